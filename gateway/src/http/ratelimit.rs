//! Per-client HTTP rate limiting (429 with `Retry-After`).

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use relay_shared::config::AuthMode;
use relay_shared::protocol::ErrorCode;

use super::caller::Caller;
use super::error::ApiError;
use crate::state::AppState;

/// Limits `/v1/` requests per client: the token's user, or the client
/// address without one. Requests with a valid API key are trusted backends
/// and are not limited. The request's [`Caller`] is left in its extensions,
/// so the handler does not verify the credentials again.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let Ok(caller) = Caller::from_request_parts(&mut parts, &state).await;
    if caller.has_api_key() && caller.server().is_ok() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let user = match state.auth.mode() {
        AuthMode::Jwt => caller.user().ok().map(|id| id.sub.clone()),
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
