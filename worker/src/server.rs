//! `GET /metrics` (Prometheus text) and `GET /healthz` on `RELAY_METRICS_LISTEN`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use fred::interfaces::ClientLike;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::runner::Core;

#[derive(Clone)]
struct Ops {
    metrics: PrometheusHandle,
    core: Arc<Core>,
}

fn router(metrics: PrometheusHandle, core: Arc<Core>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(health))
        .with_state(Ops { metrics, core })
}

async fn render(State(ops): State<Ops>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        ops.metrics.render(),
    )
}

async fn health(State(ops): State<Ops>) -> impl IntoResponse {
    let c = &ops.core;
    let draining = c.draining.is_cancelled();
    let body = json!({
        "status": if draining { "draining" } else { "ok" },
        "id": c.id,
        "kinds": c.kinds,
        "running": c.running_count(),
        "concurrency": c.concurrency,
        "redis": c.engine.queue.client().is_connected(),
    });
    (StatusCode::OK, axum::Json(body))
}

/// Serves until `stop` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    core: Arc<Core>,
    stop: CancellationToken,
) {
    let app = router(metrics, core);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        tracing::error!(error = %e, "metrics server failed");
    }
}
