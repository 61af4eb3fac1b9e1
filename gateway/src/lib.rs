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
//! - [`conns`]: every open WebSocket: heartbeats, idle and expiry closes, the drain.
//! - [`replay`]: shared, bounded history reads for WebSocket subscribes.
//! - [`http`]: publish, poll, SSE and operations endpoints, and the HTTP error type.
//! - [`jobs`]: the job routes (`/v1/jobs`, uploads, dead letters) and the job sweeps.
//! - [`auth`]: JWT and API-key authentication, topic permissions.
//! - [`limits`]: per-user and per-address connection limits, frame and request rates.
//! - [`serve`]: the accept loop (header deadline, client address, graceful stop).
//! - [`state`]: the shared state and the seam to the job system.
//! - [`readiness`]: whether this gateway can serve (`/readyz`, `relay_gateway_ready`).
//! - [`status`]: this gateway's instance report, and `GET /v1/status`.
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
pub mod readiness;
pub mod replay;
pub mod serve;
pub mod state;
pub mod status;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use relay_shared::config::{AuthMode, GatewayConfig};
use relay_shared::redis::Redis;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Authenticator;
use crate::hub::Hub;
use crate::state::{AppState, StateParts};

/// Why the gateway could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A configuration problem found while starting (exit 64): a bad key,
    /// URL or address.
    #[error("{0}")]
    Config(String),
}

impl relay_shared::process::Fatal for RunError {
    fn is_config(&self) -> bool {
        matches!(self, RunError::Config(_))
    }
}

/// How often idle HTTP rate-limit entries are forgotten.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);
/// How long background tasks get to stop after the drain.
const BACKGROUND_STOP_WAIT: Duration = Duration::from_secs(1);

/// Every documented route, each with its documentation, over the
/// gateway's state.
pub fn api(max_upload_bytes: u64) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(http::routes())
        .routes(routes!(status::status))
        .merge(jobs::routes(max_upload_bytes))
}

/// The gateway's routes over its state, under its limits: the documented
/// API, the WebSocket upgrade, `/metrics` and `/openapi.json`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes as usize;
    let (api, doc) = api(state.config.max_upload_bytes).split_for_parts();
    let doc = Bytes::from(doc.to_json().unwrap_or_default());
    api.route("/v1/ws", get(ws::upgrade))
        .route("/metrics", get(http::ops::metrics))
        .route(
            "/openapi.json",
            get(move || std::future::ready(([(CONTENT_TYPE, "application/json")], doc.clone()))),
        )
        .fallback(|| async { http::error::ApiError::not_found("no such endpoint") })
        // Route-level body limits (uploads) take precedence over this default.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::ratelimit::limit,
        ))
        .layer(axum::middleware::from_fn(http::timing::time))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(cors(&state.config.allowed_origins))
        .with_state(state)
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
    let redis = relay_shared::redis::connect(&config.common)
        .await
        .map_err(|e| RunError::Config(format!("RELAY_REDIS_URL: {e}")))?;
    let state = build_state(config, &redis).await?;
    let background = Background::start(&state, redis);
    background.serve_metrics(&state, &listener).await?;
    tracing::info!(addr = ?listener.local_addr().ok(), instance = %state.instance, "gateway listening");
    let clients = TaskTracker::new();
    let server = tokio::spawn(serve::serve(
        listener,
        router(state.clone()),
        state.config.handshake_timeout,
        state.shutdown.clone(),
        clients.clone(),
    ));
    shutdown.cancelled().await;
    drain(&state, server, clients).await;
    background.stop().await;
    tracing::info!("gateway stopped");
    Ok(())
}

/// Metrics, authentication, limits, the hub, the job API: everything the
/// handlers share.
async fn build_state(config: GatewayConfig, redis: &Redis) -> Result<AppState, RunError> {
    let instance = config.common.instance_id("gateway");
    let metrics = relay_shared::telemetry::install_metrics("gateway", &instance);
    crate::metrics::describe();
    let jwt = config.auth.mode == AuthMode::Jwt;
    if !jwt {
        tracing::warn!("RELAY_AUTH=off: every client is an admin named anonymous; never use this in production");
    }
    let limits = Arc::new(crate::limits::Limits::new(&config, jwt));
    let auth =
        Arc::new(Authenticator::new(&config.auth, &config.api_keys.0).map_err(RunError::Config)?);
    let bus = redis.bus.clone();
    let jobs = jobs::JobsApi::connect(&config, bus.clone())
        .await
        .map_err(|e| RunError::Config(format!("RELAY_DATABASE_URL: {e}")))?;
    let drain = CancellationToken::new();
    let state = AppState::new(StateParts {
        instance,
        hub: Hub::new(redis.subscriber.clone(), config.common.redis_cluster()),
        replay: replay::ReplayReads::new(bus.clone()),
        conns: conns::Conns::new(config.heartbeat, drain.clone()),
        bus,
        auth,
        metrics,
        shutdown: drain,
        jobs,
        tracker: TaskTracker::new(),
        limits,
        config,
    });
    Ok(state)
}

/// The gateway's own tasks: the pub/sub reader, the connection sweeper,
/// the status reporter, the limits' forgetting, and the metrics listener.
struct Background {
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    fn start(state: &AppState, redis: Redis) -> Self {
        let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
        tasks.spawn(state.hub.clone().run(redis.bus, stop.clone()));
        tasks.spawn(state.conns.clone().run(stop.clone()));
        tasks.spawn(status::reporter(state.clone(), stop.clone()));
        let (limits, forget) = (state.limits.clone(), stop.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(FORGET_IDLE_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => limits.forget_idle(),
                    _ = forget.cancelled() => break,
                }
            }
        });
        Self { tasks, stop }
    }

    /// Serves `/metrics` on `RELAY_METRICS_LISTEN` when it is set and is not
    /// the main listener's address, until the drain starts.
    async fn serve_metrics(&self, state: &AppState, main: &TcpListener) -> Result<(), RunError> {
        let Some(addr) = state.config.metrics_listen else {
            return Ok(());
        };
        if main.local_addr().ok() == Some(addr) {
            return Ok(());
        }
        let listener = relay_shared::process::bind("RELAY_METRICS_LISTEN", addr)
            .await
            .map_err(RunError::Config)?;
        let app = Router::new()
            .route("/metrics", get(http::ops::metrics))
            .with_state(state.clone());
        let stop = state.shutdown.clone();
        self.tasks.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(())
    }

    /// Stops every task, waiting [`BACKGROUND_STOP_WAIT`] at most.
    async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(BACKGROUND_STOP_WAIT, self.tasks.wait()).await;
    }
}

/// Stops accepting, closes every client (WebSockets with 4000), and waits
/// for them within `RELAY_SHUTDOWN_GRACE`.
async fn drain(state: &AppState, server: tokio::task::JoinHandle<()>, clients: TaskTracker) {
    let grace = state.config.common.shutdown_grace;
    tracing::info!(grace = ?grace, "draining");
    state.shutdown.cancel();
    let drained = tokio::time::timeout(grace, async {
        let _ = server.await;
        clients.close();
        state.tracker.close();
        tokio::join!(clients.wait(), state.tracker.wait());
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace elapsed with clients still connected");
    }
}
