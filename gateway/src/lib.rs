//! Relay's gateway: a stateless WebSocket, SSE, long-poll and REST front.
//!
//! Any number of gateways run behind a load balancer. None holds state that
//! another needs: live events reach every gateway through Redis pub/sub
//! (one subscriber connection per gateway, one channel per topic with local
//! interest), and history lives in Redis streams, so a client resumes on any
//! gateway with `since` and loses nothing.
//!
//! # Layout
//!
//! - [`hub`]: local interest per topic, the Redis subscriber, fan-out, catch-up after reconnects.
//! - [`ws`]: the WebSocket session (reader and writer, replay then live, backpressure).
//! - [`http`]: publish, poll, SSE, status and operations endpoints, and the HTTP error type.
//! - [`auth`]: JWT and API-key authentication, topic permissions.
//! - [`limits`]: per-user and per-address connection limits, frame and request rates.
//! - [`serve`]: the accept loop (header deadline, client address, graceful stop).
//! - [`state`]: the shared state and the seam to the job system.
//! - [`status`]: cluster-wide status reports in Redis.
//! - [`metrics`]: metric names and helpers.
//! - [`openapi`]: the OpenAPI document.

pub mod auth;
pub mod conns;
pub mod http;
pub mod hub;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod replay;
pub mod serve;
pub mod state;
pub mod status;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use relay_shared::bus::{Bus, BusSettings};
use relay_shared::config::{AuthMode, GatewayConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::hub::Hub;
use crate::state::{AppState, StateParts};

/// Why the gateway could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A configuration problem found while starting (exit 64).
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The gateway's routes over its state, with the job routes (which carry
/// their own state) merged in under the same limits.
pub fn router(state: AppState, jobs: Option<Router>) -> Router {
    let body_limit = state.config.max_body_bytes as usize;
    let events = Router::new()
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/poll", get(http::poll::poll))
        .route("/v1/sse", get(http::sse::sse))
        .route("/v1/send", post(http::publish::send))
        .route("/v1/publish", post(http::publish::publish))
        .route("/v1/broadcast", post(http::publish::broadcast))
        .route("/v1/status", get(status::status))
        .route("/healthz", get(http::ops::healthz))
        .route("/readyz", get(http::ops::readyz))
        .route("/metrics", get(http::ops::metrics))
        .route("/openapi.json", get(http::ops::openapi))
        .fallback(|| async { http::error::ApiError::not_found("no such endpoint") })
        .with_state(state.clone());
    // Route-level body limits (uploads) take precedence over this default.
    events
        .merge(jobs.unwrap_or_default())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::ratelimit::limit,
        ))
        .layer(axum::middleware::from_fn(http::timing::time))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(cors(&state.config.allowed_origins))
}

/// CORS for browsers calling the HTTP API: the allowed origins (any when
/// none are configured), tokens in headers, no cookies.
fn cors(origins: &relay_shared::config::Origins) -> tower_http::cors::CorsLayer {
    use axum::http::{header, HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = if origins.0.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .0
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// Runs the gateway on `listener` until `shutdown`, then drains: stops
/// accepting, closes WebSockets with 4000, and returns within
/// `RELAY_SHUTDOWN_GRACE`.
pub async fn run(
    listener: TcpListener,
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let instance = config.common.instance_id("gateway");
    let metrics_handle = relay_shared::telemetry::install_metrics("gateway", &instance);
    crate::metrics::describe();
    if config.common.auth == AuthMode::Off {
        tracing::warn!("RELAY_AUTH=off: every client is an admin named anonymous; never use this in production");
    }
    let client_limits = Arc::new(crate::limits::Limits::new(
        &config,
        config.common.auth == AuthMode::Jwt,
    ));
    let auth =
        Arc::new(Authenticator::new(&config.common, &config.api_keys.0).map_err(RunError::Config)?);

    let redis = relay_shared::redis::client(&config.common.redis_url)
        .map_err(|e| RunError::Config(format!("RELAY_REDIS_URL: {e}")))?;
    let subscriber = relay_shared::redis::subscriber(&config.common.redis_url)
        .map_err(|e| RunError::Config(format!("RELAY_REDIS_URL: {e}")))?;
    let (up, sub_up) = tokio::join!(
        relay_shared::redis::connect(&redis, Duration::from_secs(2)),
        relay_shared::redis::connect(&subscriber, Duration::from_secs(2)),
    );
    if !(up && sub_up) {
        tracing::warn!(url = %config.common.redis_url, "redis is not reachable yet; retrying in the background");
    }
    let bus = Bus::new(
        redis,
        BusSettings {
            history_size: config.common.history_size,
            history_ttl: config.common.history_ttl,
            sharded: config.common.redis_cluster(),
        },
    );
    let jobs = jobs::JobsApi::connect(&config, bus.clone(), auth.clone())
        .await
        .map_err(|e| RunError::Config(format!("RELAY_DATABASE_URL: {e}")))?;
    let hub = Hub::new(subscriber, config.common.redis_cluster());
    let drain = CancellationToken::new();
    let tracker = TaskTracker::new();
    let grace = config.common.shutdown_grace;
    let metrics_listen = config.metrics_listen;
    let connections = conns::Conns::new(config.heartbeat, drain.clone());
    let state = AppState::new(StateParts {
        config,
        instance: instance.clone(),
        bus: bus.clone(),
        hub: hub.clone(),
        replay: replay::ReplayReads::new(bus.clone()),
        conns: connections,
        auth,
        metrics: metrics_handle,
        shutdown: drain.clone(),
        jobs: Some(Arc::new(jobs.clone()) as Arc<dyn state::JobDirectory>),
        tracker: tracker.clone(),
        limits: client_limits.clone(),
    });

    let background = CancellationToken::new();
    let hub_task = tokio::spawn(hub.run(bus, background.clone()));
    let conns_task = tokio::spawn(state.conns.clone().run(background.clone()));
    let status_task = tokio::spawn(status::reporter(state.clone(), background.clone()));

    let app = router(state.clone(), Some(jobs.router()));
    if let Some(addr) = metrics_listen.filter(|a| Some(*a) != listener.local_addr().ok()) {
        let metrics_app = Router::new()
            .route("/metrics", get(http::ops::metrics))
            .with_state(state.clone());
        let l = TcpListener::bind(addr).await?;
        let stop = drain.clone();
        tokio::spawn(async move {
            let _ = axum::serve(l, metrics_app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
    }
    tracing::info!(addr = ?listener.local_addr().ok(), instance = %instance, "gateway listening");
    let conns = TaskTracker::new();
    let handshake_timeout = state.config.handshake_timeout;
    let server = tokio::spawn(serve::serve(
        listener,
        app,
        handshake_timeout,
        drain.clone(),
        conns.clone(),
    ));
    let forget = background.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => client_limits.forget_idle(),
                _ = forget.cancelled() => break,
            }
        }
    });

    shutdown.cancelled().await;
    tracing::info!(grace = ?grace, "draining");
    drain.cancel();
    let drained = tokio::time::timeout(grace, async {
        let _ = server.await;
        conns.close();
        tracker.close();
        tokio::join!(conns.wait(), tracker.wait());
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace elapsed with clients still connected");
    }
    background.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = status_task.await;
        let _ = hub_task.await;
        let _ = conns_task.await;
    })
    .await;
    tracing::info!("gateway stopped");
    Ok(())
}
