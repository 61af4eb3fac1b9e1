//! The job half of the gateway: `/v1/jobs`, `/v1/uploads`, the dead-letter
//! list, and the sweeps that make a `202` mean "will run".
//!
//! [`JobsApi::connect`] never waits for PostgreSQL: the pool connects on
//! demand and the schema is migrated in the background as soon as
//! PostgreSQL answers; until then job endpoints answer 503 `UNAVAILABLE`.
//!
//! # Layout
//!
//! - [`routes`]: submit, read, list and cancel jobs.
//! - [`uploads`]: `POST /v1/uploads`, streamed to PostgreSQL chunk by chunk.
//! - [`dead`]: the dead-letter list and re-drive (server API).
//! - [`sweeper`]: enqueues recorded-but-not-enqueued jobs, re-enqueues jobs
//!   the queue lost, removes abandoned uploads.
//! - [`errors`]: job errors as contract errors.

pub mod dead;
pub mod errors;
pub mod routes;
pub mod sweeper;
#[cfg(test)]
mod tests;
pub mod uploads;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use relay_shared::bus::Bus;
use relay_shared::config::GatewayConfig;
use relay_shared::jobs::events::JobEvents;
use relay_shared::jobs::kinds::BUILT_IN;
use relay_shared::jobs::store::StoreSettings;
use relay_shared::jobs::{Jobs, Queue, Store, StoreError};
use relay_shared::protocol::ErrorCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::http::error::ApiError;

/// Connections one gateway holds to PostgreSQL at most.
pub const MAX_PG_CONNECTIONS: usize = 16;
/// How long the list of registered kinds is trusted.
const KINDS_TTL: Duration = Duration::from_secs(5);

/// The job API; cheap to clone.
#[derive(Clone)]
pub struct JobsApi {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) jobs: Jobs,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) max_upload_bytes: u64,
    pub(crate) max_body_bytes: u64,
    kinds: Mutex<Option<(Instant, Vec<String>)>>,
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl JobsApi {
    /// Builds the pool (connecting lazily) and starts the background
    /// migration and the sweeps. Fails only on an unusable database URL.
    pub async fn connect(
        config: &GatewayConfig,
        bus: Bus,
        auth: Arc<Authenticator>,
    ) -> Result<JobsApi, StoreError> {
        let store = Store::new(&StoreSettings {
            url: config.common.database_url.clone(),
            max_connections: MAX_PG_CONNECTIONS,
        })?;
        let stop = CancellationToken::new();
        store.migrate_in_background(stop.clone());
        let queue = Queue::new(bus.client().clone(), bus.settings().sharded);
        let jobs = Jobs::new(store, queue, JobEvents::new(bus));
        tokio::spawn(sweeper::run(jobs.clone(), stop.clone()));
        Ok(JobsApi {
            inner: Arc::new(Inner {
                jobs,
                auth,
                max_upload_bytes: config.max_upload_bytes,
                max_body_bytes: config.max_body_bytes,
                kinds: Mutex::new(None),
                stop,
            }),
        })
    }

    /// The job routes, state applied.
    pub fn router(&self) -> Router {
        let upload_limit = usize::try_from(self.inner.max_upload_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(64 * 1024);
        let json_limit = self.inner.max_body_bytes as usize;
        Router::new()
            .route("/v1/jobs", post(routes::submit).get(routes::list))
            .route("/v1/jobs/{id}", get(routes::get_one))
            .route("/v1/jobs/{id}/cancel", post(routes::cancel))
            .route("/v1/dead-letters", get(dead::list))
            .route("/v1/dead-letters/{id}/redrive", post(dead::redrive))
            .layer(DefaultBodyLimit::max(json_limit))
            .route(
                "/v1/uploads",
                post(uploads::upload).layer(DefaultBodyLimit::max(upload_limit)),
            )
            .with_state(self.clone())
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The owner of a job (for `job:{id}` subscriptions); `None` when there is no such job.
    pub async fn job_owner(&self, id: &str) -> Result<Option<String>, ApiError> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        Ok(self.inner.jobs.store.job_owner(id).await?)
    }

    /// Whether PostgreSQL answers within about a second (and is migrated).
    pub async fn ready(&self) -> bool {
        let store = &self.inner.jobs.store;
        store.is_migrated() && store.ping(Duration::from_secs(1)).await
    }

    /// Queue depth per kind: `[{"kind","waiting","running","delayed","dead"}]`.
    pub async fn queue_stats(&self) -> Value {
        let jobs = &self.inner.jobs;
        let kinds = self.kinds().await;
        let dead = jobs.store.dead_counts().await.unwrap_or_default();
        let mut out = Vec::with_capacity(kinds.len());
        for kind in kinds {
            let depth = jobs.queue.depth(&kind).await.ok();
            let dead_n = dead
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            out.push(json!({
                "kind": kind,
                "waiting": depth.map(|d| d.waiting),
                "running": depth.map(|d| d.running),
                "delayed": depth.map(|d| d.delayed),
                "dead": dead_n,
            }));
        }
        Value::Array(out)
    }

    /// Built-in kinds plus the kinds workers registered (cached a few seconds).
    pub(crate) async fn kinds(&self) -> Vec<String> {
        if let Ok(cache) = self.inner.kinds.lock() {
            if let Some((at, kinds)) = cache.as_ref() {
                if at.elapsed() < KINDS_TTL {
                    return kinds.clone();
                }
            }
        }
        let mut kinds: Vec<String> = BUILT_IN.iter().map(|k| k.to_string()).collect();
        match self.inner.jobs.queue.registered_kinds().await {
            Ok(registered) => {
                for k in registered {
                    if !kinds.contains(&k) {
                        kinds.push(k);
                    }
                }
                kinds.sort();
                if let Ok(mut cache) = self.inner.kinds.lock() {
                    *cache = Some((Instant::now(), kinds.clone()));
                }
            }
            Err(e) => tracing::debug!(error = %e, "registered kinds unknown"),
        }
        kinds
    }
}

impl crate::state::JobDirectory for JobsApi {
    fn owner<'a>(
        &'a self,
        id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Option<String>, ErrorCode>> + Send + 'a>> {
        Box::pin(async move { self.job_owner(id).await.map_err(|e| e.code) })
    }

    fn ready(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(JobsApi::ready(self))
    }

    fn status(&self) -> Pin<Box<dyn Future<Output = Value> + Send + '_>> {
        Box::pin(self.queue_stats())
    }
}
