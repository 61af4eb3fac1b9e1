//! `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fred::prelude::*;
use utoipa::OpenApi;

use crate::state::AppState;

/// How long a readiness check waits for Redis or PostgreSQL.
const CHECK_WAIT: Duration = Duration::from_secs(1);

/// The process is alive.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive")))]
pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready only while Redis and PostgreSQL answer, the pub/sub subscription is
/// live, and the gateway is not draining.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let draining = state.draining();
    let redis = state.bus.is_connected()
        && tokio::time::timeout(CHECK_WAIT, state.bus.client().ping::<String>(None))
            .await
            .is_ok_and(|r| r.is_ok());
    let pubsub = state.hub.pubsub_up();
    let postgres = match &state.jobs {
        Some(jobs) => Some(
            tokio::time::timeout(CHECK_WAIT, jobs.ready())
                .await
                .unwrap_or(false),
        ),
        None => None,
    };
    let ready = !draining && redis && pubsub && postgres.unwrap_or(true);
    crate::metrics::readiness(ready, redis, pubsub, postgres);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "ready": ready, "draining": draining, "redis": redis, "pubsub": pubsub, "postgres": postgres,
    });
    (status, Json(body)).into_response()
}

/// Prometheus metrics in the text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    crate::status::refresh_gauges(&state);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// This API as OpenAPI 3.1.
pub async fn openapi() -> Response {
    Json(crate::openapi::ApiDoc::openapi()).into_response()
}
