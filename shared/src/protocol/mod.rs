//! The WebSocket protocol: client ops, server frames, error and close codes.
//!
//! - [`client`]: client ops, parsed from a text frame.
//! - [`server`]: the frames the server sends (events excepted: they are
//!   prebuilt, see [`crate::event`]).
//! - this file: the contract's error codes and close reasons.

use serde::Serialize;

pub mod client;
#[cfg(test)]
mod proptests;
pub mod server;
#[cfg(test)]
mod tests;

pub use client::{parse_client_frame, ClientOp, FrameError};
pub use server::ServerFrame;

/// The contract's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidMessage,
    UnknownOp,
    BadTopic,
    Forbidden,
    RateLimit,
    TooLarge,
    NotSubscribed,
    ServerError,
    Unavailable,
    // HTTP-only codes.
    Unauthorized,
    NotFound,
    Conflict,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidMessage => "INVALID_MESSAGE",
            ErrorCode::UnknownOp => "UNKNOWN_OP",
            ErrorCode::BadTopic => "BAD_TOPIC",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::RateLimit => "RATE_LIMIT",
            ErrorCode::TooLarge => "TOO_LARGE",
            ErrorCode::NotSubscribed => "NOT_SUBSCRIBED",
            ErrorCode::ServerError => "SERVER_ERROR",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
        }
    }

    /// Whether trying the same request again later may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimit | ErrorCode::ServerError | ErrorCode::Unavailable
        )
    }

    /// The HTTP status that goes with this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidMessage
            | ErrorCode::UnknownOp
            | ErrorCode::BadTopic
            | ErrorCode::NotSubscribed => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::RateLimit => 429,
            ErrorCode::ServerError => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

/// Why the server closes a WebSocket: the contract's close codes, each
/// with its metric label and the reason sent in the close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseReason {
    /// 4000: the server is draining; reconnect elsewhere.
    Draining = 1,
    /// 4001: the token expired.
    TokenExpired,
    /// 4008: the client fell behind its send queue; reconnect with `since`.
    TooSlow,
    /// 1009: a frame over the size limit.
    TooBig,
    /// 1008: policy violation (rate limit abuse).
    Policy,
    /// 1001: silent for two heartbeat intervals.
    Idle,
}

impl CloseReason {
    const ALL: [CloseReason; 6] = [
        CloseReason::Draining,
        CloseReason::TokenExpired,
        CloseReason::TooSlow,
        CloseReason::TooBig,
        CloseReason::Policy,
        CloseReason::Idle,
    ];

    /// The WebSocket close code.
    pub fn code(self) -> u16 {
        match self {
            CloseReason::Draining => 4000,
            CloseReason::TokenExpired => 4001,
            CloseReason::TooSlow => 4008,
            CloseReason::TooBig => 1009,
            CloseReason::Policy => 1008,
            CloseReason::Idle => 1001,
        }
    }

    /// The `reason` label of `relay_gateway_closes_total`.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Draining => "draining",
            CloseReason::TokenExpired => "token_expired",
            CloseReason::TooSlow => "too_slow",
            CloseReason::TooBig => "too_big",
            CloseReason::Policy => "policy",
            CloseReason::Idle => "idle",
        }
    }

    /// The reason text of the close frame.
    pub fn reason(self) -> &'static str {
        match self {
            CloseReason::Draining => "server draining, reconnect elsewhere",
            CloseReason::TokenExpired => "token expired",
            CloseReason::TooSlow => "too slow: reconnect with since",
            CloseReason::TooBig => "frame over the size limit",
            CloseReason::Policy => "policy violation",
            CloseReason::Idle => "idle",
        }
    }

    /// A small number for this reason (never 0), to keep it in an atomic.
    pub fn to_u8(self) -> u8 {
        self as u8
    }

    /// The reason [`CloseReason::to_u8`] gave `n`, if any.
    pub fn from_u8(n: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.to_u8() == n)
    }
}
