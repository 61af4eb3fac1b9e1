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

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRef};
use relay_shared::bus::Bus;
use relay_shared::config::GatewayConfig;
use relay_shared::jobs::events::JobEvents;
use relay_shared::jobs::kinds::BUILT_IN;
use relay_shared::jobs::store::StoreSettings;
use relay_shared::jobs::{Jobs, Queue, Store, StoreError};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    pub(crate) max_upload_bytes: u64,
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
    pub async fn connect(config: &GatewayConfig, bus: Bus) -> Result<JobsApi, StoreError> {
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
                max_upload_bytes: config.max_upload_bytes,
                kinds: Mutex::new(None),
                stop,
            }),
        })
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

/// The job routes, each with its documentation, over any state that holds
/// the job API and the authenticator. An upload may be as large as
/// `max_upload_bytes` (plus room for the multipart framing); the rest take
/// the gateway's default body limit.
pub fn routes<S>(max_upload_bytes: u64) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    JobsApi: FromRef<S>,
    Arc<Authenticator>: FromRef<S>,
{
    let upload_limit = usize::try_from(max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    let (schemas, paths, upload) = routes!(uploads::upload);
    OpenApiRouter::default()
        .routes(routes!(routes::submit, routes::list))
        .routes(routes!(routes::get_one))
        .routes(routes!(routes::cancel))
        .routes(routes!(dead::list))
        .routes(routes!(dead::redrive))
        .routes((
            schemas,
            paths,
            upload.layer(DefaultBodyLimit::max(upload_limit)),
        ))
}
