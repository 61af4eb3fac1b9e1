//! Whether this gateway can serve right now: Redis and PostgreSQL answer,
//! the pub/sub subscription is live, and it is not draining. `/readyz`
//! answers it, and the status reporter asks it every few seconds, which
//! keeps `relay_gateway_ready` fresh without a prober.

use std::time::Duration;

use fred::prelude::*;

use crate::state::AppState;

/// How long a readiness check waits for Redis or PostgreSQL.
const CHECK_WAIT: Duration = Duration::from_secs(1);

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub draining: bool,
    pub redis: bool,
    pub pubsub: bool,
    pub postgres: bool,
}

/// Checks every dependency (each within a second) and records the outcome
/// in `relay_gateway_ready` and `relay_gateway_dependency_up`.
pub async fn readiness(state: &AppState) -> Readiness {
    let draining = state.draining();
    let redis = state.bus.is_connected()
        && tokio::time::timeout(CHECK_WAIT, state.bus.client().ping::<String>(None))
            .await
            .is_ok_and(|r| r.is_ok());
    let pubsub = state.hub.pubsub_up();
    let postgres = tokio::time::timeout(CHECK_WAIT, state.jobs.ready())
        .await
        .unwrap_or(false);
    let ready = !draining && redis && pubsub && postgres;
    crate::metrics::readiness(ready, redis, pubsub, postgres);
    Readiness {
        ready,
        draining,
        redis,
        pubsub,
        postgres,
    }
}
