//! The gateway's one shared state, handed to every handler. Handlers of
//! one concern take only their part of it (`State<JobsApi>`,
//! `Arc<Authenticator>` for the [`Caller`](crate::http::caller::Caller)),
//! reached through axum's `FromRef`.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;
use relay_shared::bus::Bus;
use relay_shared::config::GatewayConfig;
use relay_shared::protocol::ErrorCode;
use relay_shared::topic::Topic;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Access, Authenticator, Identity};
use crate::hub::Hub;
use crate::jobs::JobsApi;
use crate::limits::Limits;

/// What the state is built from.
pub struct StateParts {
    pub config: GatewayConfig,
    pub instance: String,
    pub bus: Bus,
    pub hub: Hub,
    /// Shared, bounded history reads for WebSocket subscribes.
    pub replay: crate::replay::ReplayReads,
    /// Open WebSocket connections: heartbeat, idle and expiry closes, drain.
    pub conns: crate::conns::Conns,
    pub auth: Arc<Authenticator>,
    pub metrics: PrometheusHandle,
    /// Cancelled when the gateway starts draining.
    pub shutdown: CancellationToken,
    /// The job API: records, queue, uploads, dead letters.
    pub jobs: JobsApi,
    /// Tracks long-lived client tasks (WebSocket sessions, SSE streams) for the drain.
    pub tracker: TaskTracker,
    pub limits: Arc<Limits>,
}

/// Shared state; cheap to clone. Dereferences to its [`StateParts`].
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    parts: StateParts,
    started: Instant,
    started_at_ms: u64,
    clients: Arc<Semaphore>,
}

impl Deref for AppState {
    type Target = StateParts;
    fn deref(&self) -> &StateParts {
        &self.0.parts
    }
}

impl AppState {
    pub fn new(parts: StateParts) -> Self {
        let clients = Arc::new(Semaphore::new(parts.config.max_connections.get()));
        let started_at_ms = relay_shared::clock::now_ms();
        Self(Arc::new(Inner {
            parts,
            started: Instant::now(),
            started_at_ms,
            clients,
        }))
    }

    /// When this gateway started.
    pub fn started(&self) -> Instant {
        self.0.started
    }

    /// When this gateway started, in milliseconds since the Unix epoch.
    pub fn started_at_ms(&self) -> u64 {
        self.0.started_at_ms
    }

    pub fn draining(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// A place for one more long-lived client (WebSocket, SSE, long-poll), if any is left.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clients.clone().try_acquire_owned().ok()
    }

    /// The client's address (through trusted proxies).
    pub fn client_ip(&self, parts: &axum::http::request::Parts) -> Option<std::net::IpAddr> {
        crate::serve::client_ip(parts, &self.config.trusted_proxies.0)
    }

    /// Clients held now.
    pub fn clients_held(&self) -> usize {
        self.config.max_connections.get() - self.0.clients.available_permits()
    }

    /// Whether `identity` may read `topic`, on any transport.
    pub async fn authorize_read(
        &self,
        identity: &Identity,
        topic: &Topic,
    ) -> Result<(), (ErrorCode, &'static str)> {
        match identity.read_access(topic) {
            Access::Allowed => Ok(()),
            Access::Denied => Err((ErrorCode::Forbidden, "not allowed to read this topic")),
            Access::IfJobOwner(id) => match self.jobs.job_owner(&id).await {
                Ok(Some(owner)) if owner == *identity.sub => Ok(()),
                Ok(_) => Err((ErrorCode::Forbidden, "not allowed to read this job")),
                Err(e) => Err((e.code, "could not check the job's owner")),
            },
        }
    }
}

impl FromRef<AppState> for JobsApi {
    fn from_ref(state: &AppState) -> JobsApi {
        state.jobs.clone()
    }
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Arc<Authenticator> {
        state.auth.clone()
    }
}
