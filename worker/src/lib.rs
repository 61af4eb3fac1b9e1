//! Relay's job worker, as a library and a process.
//!
//! A worker pulls jobs of its kinds from the Redis queue, runs each in its
//! own task under a lease, and publishes the job's events (progress, logs,
//! chunks, state) through the event path. PostgreSQL gets every state
//! change, fenced by the attempt's lease token, and progress about once a
//! second.
//!
//! An application adds its own kinds by implementing [`Handler`] and
//! registering it:
//!
//! ```no_run
//! # async fn example(config: relay_shared::config::WorkerConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use relay_worker::{handler_fn, kinds, JobError, Progress, Worker};
//!
//! let registry = kinds::builtins().register("greet", handler_fn(|ctx| async move {
//!     let name = ctx.payload()["name"].as_str().ok_or_else(|| JobError::fatal("name is required"))?.to_string();
//!     ctx.progress(Progress::percent(50.0).step("greeting")).await;
//!     ctx.chunk(format!("hello, {name}")).await?;
//!     Ok(serde_json::json!({ "greeted": name }))
//! }))?;
//! let listener = tokio::net::TcpListener::bind(config.metrics_listen).await?;
//! Worker::with_registry(config, registry).run(listener, relay_shared::shutdown::on_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! What the worker guarantees, and how:
//!
//! - At least once: a job's lease is renewed while it runs; when its worker
//!   dies the lease lapses, another worker takes the job back and runs it
//!   again (the attempt counts).
//! - Exactly one terminal state: written by a conditional update that only
//!   the attempt holding the lease token can make; its event is published
//!   only when that update changed the row.
//! - Timeouts and cancellation stop the handler: its cancellation token
//!   fires, and a handler still running [`STOP_GRACE`] later is dropped.
//! - Graceful shutdown: on SIGTERM the worker stops taking jobs, lets the
//!   running ones finish within `RELAY_SHUTDOWN_GRACE`, and gives the rest
//!   back to the queue (without counting the attempt).
//!
//! # Layout
//!
//! - [`handler`]: the [`Handler`] trait and the [`Registry`] of kinds.
//! - [`error`]: [`JobError`] and [`JobResult`], what an attempt comes to.
//! - [`context`]: [`JobContext`]: payload, attempt, progress, logs, chunks, cancellation.
//! - `runner`: pull loops, running one attempt's handler (`execute`; the
//!   rules of an attempt are the shared engine's,
//!   `relay_shared::jobs::attempt`), background duties (lease renewal,
//!   reclaim, progress, outbox, instance report) and queue signals.
//! - [`kinds`]: the built-in kinds `sleep`, `stream`, `reconcile`, and
//!   [`kinds::builtins`], a registry of them.
//! - [`upload`]: [`UploadReader`], an upload a payload names, read chunk by chunk.
//! - `server`: `/metrics` and `/healthz`.
//! - `metrics`: the worker's metric names.

pub mod context;
pub mod error;
pub mod handler;
pub mod kinds;
mod metrics;
mod runner;
mod server;
pub mod upload;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::interfaces::ClientLike;
use relay_shared::clock::now_ms;
use relay_shared::config::WorkerConfig;
use relay_shared::jobs::attempt::{Engine, EngineSettings};
use relay_shared::jobs::events::JobEvents;
use relay_shared::jobs::store::StoreSettings;
use relay_shared::jobs::{Queue, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use context::{JobContext, LogLevel};
pub use error::{JobError, JobResult};
pub use handler::{handler_fn, BadKind, Handler, Registry};
pub use relay_shared::jobs::attempt::STOP_GRACE;
pub use relay_shared::jobs::model::Progress;
pub use upload::UploadReader;

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// `RELAY_WORKER_KINDS` names a kind no handler is registered for.
    #[error("RELAY_WORKER_KINDS: unknown kind {0:?} (known: {1})")]
    UnknownKind(String, String),
    #[error("RELAY_REDIS_URL: {0}")]
    Redis(String),
    #[error("RELAY_DATABASE_URL: {0}")]
    Store(#[from] StoreError),
}

/// Every start-up error names a setting (exit code 64).
impl relay_shared::process::Fatal for WorkerError {
    fn is_config(&self) -> bool {
        true
    }
}

/// Runs the worker with the built-in kinds, `/metrics` and `/healthz` on
/// `listener`, until `shutdown` fires.
pub async fn run(
    listener: TcpListener,
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    Worker::new(config).run(listener, shutdown).await
}

/// A worker: configuration plus the kinds it can run.
pub struct Worker {
    config: WorkerConfig,
    registry: Registry,
}

impl Worker {
    /// A worker with the built-in kinds.
    pub fn new(config: WorkerConfig) -> Self {
        Self {
            config,
            registry: kinds::builtins(),
        }
    }

    /// A worker with the application's kinds.
    pub fn with_registry(config: WorkerConfig, registry: Registry) -> Self {
        Self { config, registry }
    }

    /// Runs with `/metrics` and `/healthz` on `listener` until `shutdown`
    /// fires, then drains within `RELAY_SHUTDOWN_GRACE`.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), WorkerError> {
        let config = self.config;
        let known = self.registry.kinds();
        let kinds = match &config.kinds {
            Some(list) => list.0.clone(),
            None => known.clone(),
        };
        if let Some(bad) = kinds.iter().find(|k| !known.contains(k)) {
            return Err(WorkerError::UnknownKind(bad.clone(), known.join(", ")));
        }
        let id = config.common.instance_id("worker");
        let prometheus = relay_shared::telemetry::install_metrics("worker", &id);

        let redis = relay_shared::redis::connect(&config.common)
            .await
            .map_err(|e| WorkerError::Redis(e.to_string()))?;
        let client = redis.client().clone();
        let sharded = redis.bus.settings().sharded;
        let concurrency = config.concurrency.get();
        let store = Store::new(&StoreSettings {
            url: config.common.database_url.clone(),
            max_connections: (concurrency + 4).min(32),
        })?;

        let duties_stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn({
            let store = store.clone();
            let stop = duties_stop.clone();
            async move {
                let _ = store.migrate_in_background(stop).await;
            }
        });
        let core = Arc::new(runner::Core {
            id: id.clone(),
            engine: Engine::new(
                store,
                Queue::new(client.clone(), sharded),
                JobEvents::new(redis.bus),
                EngineSettings::local(config.job_lease),
            )
            .per_owner(config.common.max_running_per_owner),
            registry: self.registry,
            kinds: kinds.clone(),
            concurrency,
            slots: Arc::new(Semaphore::new(concurrency)),
            running: Mutex::new(HashMap::new()),
            wake: kinds.iter().map(|k| (k.clone(), Arc::default())).collect(),
            draining: CancellationToken::new(),
            paused_until: AtomicU64::new(0),
            jobs: TaskTracker::new(),
            started_at_ms: now_ms(),
        });
        if let Err(e) = core.engine.queue.register_kinds(&kinds).await {
            tracing::warn!(error = %e, "kinds not registered yet; the heartbeat will");
        }
        tracing::info!(worker = %id, kinds = ?kinds, concurrency, lease = ?config.job_lease, "worker started");

        tasks.spawn(server::serve(
            listener,
            prometheus,
            core.clone(),
            duties_stop.clone(),
        ));
        runner::spawn_signals(&core, redis.subscriber, &tasks, &duties_stop);
        runner::spawn_duties(&core, &tasks, &duties_stop);
        let pulls = TaskTracker::new();
        for kind in &kinds {
            pulls.spawn(core.clone().pull_loop(kind.clone()));
        }
        pulls.close();

        shutdown.cancelled().await;
        drain(&core, &pulls, config.common.shutdown_grace).await;
        runner::deregister(&core).await;
        duties_stop.cancel();
        tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), tasks.wait()).await;
        let _ = client.quit().await;
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// Stops taking jobs, waits for running ones within the grace, then tells
/// the rest to stop and gives them back.
async fn drain(core: &Arc<runner::Core>, pulls: &TaskTracker, grace: Duration) {
    let running = core.running_count();
    tracing::info!(running, grace = ?grace, "draining");
    core.draining.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), pulls.wait()).await;
    core.jobs.close();
    let release_budget = (grace / 3).min(STOP_GRACE + Duration::from_secs(1));
    let finish_budget = grace.saturating_sub(release_budget);
    if tokio::time::timeout(finish_budget, core.jobs.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            running = core.running_count(),
            "grace ending; giving running jobs back"
        );
        core.stop_all(runner::StopReason::Shutdown);
        let _ = tokio::time::timeout(release_budget, core.jobs.wait()).await;
    }
}
