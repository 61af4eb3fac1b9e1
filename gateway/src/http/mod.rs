//! The HTTP API: publishing, polling, SSE, status and operations.

pub mod error;
pub mod ops;
pub mod poll;
pub mod publish;
pub mod ratelimit;
pub mod sse;
pub mod timing;
