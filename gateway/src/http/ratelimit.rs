//! Per-client HTTP rate limiting (429 with `Retry-After`).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use relay_shared::config::AuthMode;
use relay_shared::protocol::ErrorCode;

use super::error::ApiError;
use crate::state::AppState;

/// Limits `/v1/` requests per client: the token's user, or the client
/// address without one. Requests with a valid API key are trusted backends
/// and are not limited.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    if parts.headers.contains_key("x-api-key") && state.auth.server(&parts).is_ok() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let user = match state.auth.mode() {
        AuthMode::Jwt => state.auth.user(&parts).ok().map(|id| id.sub),
        AuthMode::Off => None,
    };
    let key = match user {
        Some(sub) => format!("u:{sub}"),
        None => format!(
            "ip:{}",
            state
                .client_ip(&parts)
                .map(|ip| ip.to_string())
                .unwrap_or_default()
        ),
    };
    if let Err(wait) = state.limits.check_http(&key) {
        return ApiError::new(ErrorCode::RateLimit, "too many requests")
            .with_retry_after(wait)
            .into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}
