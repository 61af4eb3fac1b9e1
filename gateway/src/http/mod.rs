//! The HTTP API: publishing, polling, SSE and operations, the request's
//! caller, and the one error type.

pub mod caller;
pub mod error;
pub mod ops;
pub mod poll;
pub mod publish;
pub mod ratelimit;
pub mod sse;
pub mod timing;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The documented routes of this module, each with its documentation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(publish::publish))
        .routes(routes!(publish::broadcast))
        .routes(routes!(publish::send))
        .routes(routes!(poll::poll))
        .routes(routes!(sse::sse))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
}
