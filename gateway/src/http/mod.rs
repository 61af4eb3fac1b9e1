//! The HTTP API: publishing, polling, SSE and operations, the request's
//! caller, and the one error type.
//!
//! - [`publish`]: `/v1/publish`, `/v1/broadcast`, `/v1/send`.
//! - [`poll`], [`sse`]: events over plain HTTP; [`reads`] is what they share
//!   in front of their reads (query, start, stream slots); the reads
//!   themselves are [`crate::replay::cursor`]'s.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`caller`]: the request's credentials, verified once.
//! - [`ratelimit`], [`timing`]: the middleware.
//! - [`error`]: [`error::ApiError`], the contract's error body.

pub mod caller;
pub mod error;
pub mod ops;
pub mod poll;
pub mod publish;
pub mod ratelimit;
pub mod reads;
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
