//! Cluster-wide status: each gateway reports itself into Redis with a
//! timestamp; `GET /v1/status` reads every instance's report.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::request::Parts;
use axum::Json;
use fred::prelude::*;
use relay_shared::keys;
use tokio_util::sync::CancellationToken;

use crate::http::error::ApiError;
use crate::state::AppState;

/// How often an instance reports itself.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);
/// Reports older than this are not listed.
pub const STALE_AFTER_MS: u64 = 15_000;
/// Reports older than this are deleted.
const FORGET_AFTER_MS: u64 = 3_600_000;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Updates gauges that are read, not counted.
pub fn refresh_gauges(state: &AppState) {
    metrics::gauge!(crate::metrics::TOPICS).set(state.hub.topic_count() as f64);
}

fn report(state: &AppState) -> serde_json::Value {
    let metrics = state.metrics.render();
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    serde_json::json!({
        "role": "gateway",
        "id": state.instance,
        "connections": gauge(crate::metrics::CONNECTIONS) as u64,
        "subscriptions": gauge(crate::metrics::SUBSCRIPTIONS) as u64,
        "topics": state.hub.topic_count(),
        "clients": state.clients_held(),
        "uptime_s": state.started().elapsed().as_secs(),
        "started_at_ms": state.started_at_ms(),
        "seen_ms": now_ms(),
        "draining": state.draining(),
    })
}

/// Reports this gateway every [`REPORT_EVERY`] until `stop`, then removes the report.
pub async fn reporter(state: AppState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(REPORT_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let body = report(&state).to_string();
                let _: Result<(), _> = state.bus.client().hset(keys::INSTANCES, (state.instance.as_str(), body)).await;
                forget_stale(&state).await;
                // Keeps relay_gateway_ready fresh without a prober.
                let _ = crate::http::ops::readyz(axum::extract::State(state.clone())).await;
            }
            _ = stop.cancelled() => break,
        }
    }
    let _: Result<(), _> = state
        .bus
        .client()
        .hdel(keys::INSTANCES, state.instance.as_str())
        .await;
}

async fn forget_stale(state: &AppState) {
    let all: Result<std::collections::HashMap<String, String>, _> =
        state.bus.client().hgetall(keys::INSTANCES).await;
    let Ok(all) = all else { return };
    let now = now_ms();
    let stale: Vec<String> = all
        .into_iter()
        .filter(|(_, v)| {
            serde_json::from_str::<serde_json::Value>(v)
                .ok()
                .and_then(|j| j["seen_ms"].as_u64())
                .is_none_or(|seen| now.saturating_sub(seen) > FORGET_AFTER_MS)
        })
        .map(|(k, _)| k)
        .collect();
    if !stale.is_empty() {
        let _: Result<(), _> = state.bus.client().hdel(keys::INSTANCES, stale).await;
    }
}

/// Cluster-wide status: gateways, workers, queues, polling clients seen in the last minute.
#[utoipa::path(get, path = "/v1/status",
    responses((status = 200, description = "gateways, workers, queues, pollers"), (status = 401), (status = 503)),
    security(("api_key" = [])))]
pub async fn status(
    State(state): State<AppState>,
    parts: Parts,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.auth.server(&parts)?;
    if !state.bus.is_connected() {
        return Err(ApiError::unavailable("redis is unavailable"));
    }
    let client = state.bus.client();
    // Our own report is always fresh in our answer.
    let _: Result<(), _> = client
        .hset(
            keys::INSTANCES,
            (state.instance.as_str(), report(&state).to_string()),
        )
        .await;
    let all: std::collections::HashMap<String, String> = client
        .hgetall(keys::INSTANCES)
        .await
        .map_err(relay_shared::bus::BusError::from)?;
    let now = now_ms();
    let (mut gateways, mut workers) = (Vec::new(), Vec::new());
    for v in all.values() {
        let Ok(j) = serde_json::from_str::<serde_json::Value>(v) else {
            continue;
        };
        if j["seen_ms"]
            .as_u64()
            .is_none_or(|seen| now.saturating_sub(seen) > STALE_AFTER_MS)
        {
            continue;
        }
        match j["role"].as_str() {
            Some("gateway") => gateways.push(j),
            Some("worker") => workers.push(j),
            _ => {}
        }
    }
    gateways.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    workers.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let minute_ago = now.saturating_sub(60_000) as f64;
    let _: Result<(), _> = client
        .zremrangebyscore(keys::POLLERS, f64::NEG_INFINITY, minute_ago)
        .await;
    let pollers: u64 = client
        .zcount(keys::POLLERS, minute_ago, f64::INFINITY)
        .await
        .unwrap_or(0);
    let queues = match &state.jobs {
        Some(jobs) => jobs.status().await,
        None => serde_json::json!([]),
    };
    Ok(Json(serde_json::json!({
        "gateways": gateways,
        "workers": workers,
        "queues": queues,
        "pollers": pollers,
    })))
}
