//! Cluster-wide status: each gateway reports itself into Redis (an
//! [`InstanceReport`]) every few seconds; `GET /v1/status` lists every fresh
//! report, the queues, and the polling clients of the last minute.

use axum::extract::State;
use axum::Json;
use relay_shared::clock::now_ms;
use relay_shared::instances::{self, GatewayReport, InstanceReport, REPORT_EVERY};
use tokio_util::sync::CancellationToken;

use crate::http::caller::Caller;
use crate::http::error::ApiError;
use crate::state::AppState;

/// This gateway's report, from its own counts.
fn report(state: &AppState) -> InstanceReport {
    InstanceReport::Gateway(GatewayReport {
        id: state.instance.clone(),
        connections: state.conns.len() as u64,
        subscriptions: state.hub.subscriptions() as u64,
        topics: state.hub.topic_count() as u64,
        clients: state.clients_held() as u64,
        uptime_s: state.started().elapsed().as_secs(),
        started_at_ms: state.started_at_ms(),
        seen_ms: now_ms(),
        draining: state.draining(),
    })
}

/// Reports this gateway every [`REPORT_EVERY`] until `stop`, then removes the report.
pub async fn reporter(state: AppState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(REPORT_EVERY);
    let client = state.bus.client();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = instances::write(client, &report(&state)).await;
                let _ = instances::forget_stale(client, now_ms()).await;
                crate::readiness::readiness(&state).await;
            }
            _ = stop.cancelled() => break,
        }
    }
    let _ = instances::forget(client, &state.instance).await;
}

/// Cluster-wide status: gateways, workers, queues, polling clients seen in the last minute.
#[utoipa::path(get, path = "/v1/status", tag = "operations",
    responses((status = 200, description = "gateways, workers, queues, pollers"), (status = 401), (status = 503)),
    security(("api_key" = [])))]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.server()?;
    if !state.bus.is_connected() {
        return Err(ApiError::unavailable("redis is unavailable"));
    }
    let client = state.bus.client();
    // Our own report is always fresh in our answer.
    let _ = instances::write(client, &report(&state)).await;
    let now = now_ms();
    let (gateways, workers): (Vec<InstanceReport>, Vec<InstanceReport>) =
        instances::list(client, now)
            .await?
            .into_iter()
            .partition(|r| matches!(r, InstanceReport::Gateway(_)));
    let pollers = instances::count_pollers(client, now).await.unwrap_or(0);
    let queues = state.jobs.queue_stats().await;
    Ok(Json(serde_json::json!({
        "gateways": gateways,
        "workers": workers,
        "queues": queues,
        "pollers": pollers,
    })))
}
