//! What polling and SSE share in front of their reads: the query, where a
//! reader starts (topics, cursor and `since`, checked, with read access to
//! each topic), and a slot for a reader that waits.

use relay_shared::cursor::Cursor;
use relay_shared::event::Since;
use relay_shared::protocol::ErrorCode;
use relay_shared::topic;
use serde::Deserialize;

use super::error::ApiError;
use crate::auth::Identity;
use crate::replay::cursor::Start;
use crate::state::AppState;

/// The query of `GET /v1/poll` and `GET /v1/sse`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ReadQuery {
    /// Comma-separated topics.
    pub topics: Option<String>,
    /// Cursor from the previous answer.
    pub cursor: Option<String>,
    /// For one topic: an event id or millisecond timestamp to start after.
    pub since: Option<String>,
    /// Seconds to wait when there is nothing yet (0..=30; polling only).
    pub wait: Option<String>,
}

/// A slot for a waiting long-poll or an SSE stream, or 503 at the limit.
pub fn stream_permit(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    state
        .limits
        .stream_permit()
        .ok_or_else(|| ApiError::unavailable("gateway is at its stream limit").with_retry_after(5))
}

/// Validates topics, cursor and `since`, and checks read access to each topic.
pub async fn start(
    state: &AppState,
    identity: &Identity,
    topics: Option<&str>,
    cursor: Option<&str>,
    since: Option<&str>,
) -> Result<Start, ApiError> {
    let cursor = match cursor.filter(|c| !c.is_empty()) {
        Some(c) => Cursor::decode(c).map_err(|_| ApiError::invalid("malformed cursor"))?,
        None => Cursor::default(),
    };
    let topics = match topics.filter(|t| !t.is_empty()) {
        Some(list) => topic::parse_list(list, state.config.max_poll_topics.get()).map_err(|e| {
            ApiError::new(
                ErrorCode::BadTopic,
                format!("{e} (or more than {} topics)", state.config.max_poll_topics),
            )
        })?,
        None if !cursor.positions.is_empty() => {
            cursor.positions.iter().map(|p| p.topic.clone()).collect()
        }
        None => return Err(ApiError::invalid("topics is required")),
    };
    let since = match since.filter(|s| !s.is_empty()) {
        Some(_) if topics.len() != 1 => {
            return Err(ApiError::invalid(
                "since needs exactly one topic; use cursor for several",
            ))
        }
        Some(s) => Some(s.parse::<Since>().map_err(|_| {
            ApiError::invalid("since must be an event id or a millisecond timestamp")
        })?),
        None => None,
    };
    for t in &topics {
        state
            .authorize_read(identity, t)
            .await
            .map_err(|(code, msg)| ApiError::new(code, msg))?;
    }
    Ok(Start {
        topics,
        cursor,
        since,
    })
}
