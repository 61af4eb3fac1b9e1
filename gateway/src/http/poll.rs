//! `GET /v1/poll`: events over plain HTTP, with long-polling.
//!
//! Polling reads the same streams as WebSocket replay, so any gateway serves
//! any poll: the cursor carries each topic's epoch and last id.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use relay_shared::bus::StoredEvent;
use relay_shared::cursor::Cursor;
use relay_shared::event::{Since, StreamId};
use relay_shared::protocol::ErrorCode;
use relay_shared::topic::{self, Topic};
use serde::Deserialize;
use tokio::sync::Notify;

use super::caller::Caller;
use super::error::ApiError;
use crate::auth::Identity;
use crate::hub::Subscriber;
use crate::metrics as m;
use crate::state::AppState;

/// Longest long-poll wait, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PollQuery {
    /// Comma-separated topics.
    pub topics: Option<String>,
    /// Cursor from the previous answer.
    pub cursor: Option<String>,
    /// For one topic: an event id or millisecond timestamp to start after.
    pub since: Option<String>,
    /// Seconds to wait when there is nothing yet (0..=30).
    pub wait: Option<String>,
}

/// Where a reader starts: its topics and cursor, checked.
pub struct Start {
    pub topics: Vec<Topic>,
    pub cursor: Cursor,
    /// `since` for a topic the cursor does not name yet.
    pub since: Option<Since>,
}

impl Start {
    /// Whether the reader resumes from a position (a cursor or `since`)
    /// rather than starting at the end: only then is recovery counted.
    pub fn resuming(&self) -> bool {
        !self.cursor.positions.is_empty() || self.since.is_some()
    }
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

/// A batch of events read after a cursor.
pub struct Batch {
    /// Events, oldest first across topics.
    pub events: Vec<(Topic, StoredEvent)>,
    pub recovered: bool,
}

/// Reads every topic's events after the cursor and advances it.
pub async fn read(state: &AppState, start: &mut Start) -> Result<Batch, ApiError> {
    let limit = state.bus.settings().history_size as usize;
    let reads = start.topics.iter().map(|t| {
        let (since, epoch) = match start.cursor.get(t) {
            Some(p) => (
                Some(Since::Id(p.id)),
                Some(p.epoch.clone()).filter(|e| !e.is_empty()),
            ),
            None => (start.since, None),
        };
        let bus = state.bus.clone();
        let t = t.clone();
        async move {
            let h = bus.history(&t, since, epoch.as_deref(), limit).await;
            (t, since, h)
        }
    });
    let results = futures_util::future::join_all(reads).await;
    let mut events = Vec::new();
    let mut recovered = true;
    for (t, since, h) in results {
        let h = h?;
        if since.is_some() {
            recovered &= h.recovered(since);
        }
        let pos = match (h.events.last(), since) {
            (Some(ev), _) => ev.id,
            (None, Some(_)) if h.epoch_changed => h.last,
            (None, Some(s)) => since_id(s),
            (None, None) => h.last,
        };
        start.cursor.set(&t, &h.epoch, pos);
        events.extend(h.events.into_iter().map(|e| (t.clone(), e)));
    }
    // A topic now has a cursor position: `since` no longer applies.
    start.since = None;
    events.sort_by(|a, b| a.1.id.cmp(&b.1.id).then_with(|| a.0.cmp(&b.0)));
    Ok(Batch { events, recovered })
}

/// The id form of a `since` (a timestamp becomes the last id of that millisecond).
fn since_id(s: Since) -> StreamId {
    match s {
        Since::Id(id) => id,
        Since::Ts(ms) => StreamId::new(ms, u64::MAX),
    }
}

/// Interest in a set of topics that wakes a waiting reader; released on drop.
pub struct Waiter {
    state: AppState,
    topics: Vec<Topic>,
    id: u64,
    pub notify: Arc<Notify>,
}

impl Waiter {
    /// Registers and waits until every topic's channel is live.
    pub async fn register(state: &AppState, topics: &[Topic]) -> Result<Waiter, ApiError> {
        let notify = Arc::new(Notify::new());
        let id = state.hub.next_id();
        let waiter = Waiter {
            state: state.clone(),
            topics: topics.to_vec(),
            id,
            notify: notify.clone(),
        };
        let mut entries = Vec::with_capacity(topics.len());
        for t in topics {
            entries.push(
                state
                    .hub
                    .add(
                        t,
                        Subscriber::Waiter {
                            id,
                            notify: notify.clone(),
                        },
                    )
                    .await,
            );
        }
        for e in entries {
            if !e.wait_ready(Duration::from_secs(5)).await {
                return Err(ApiError::unavailable("redis is unavailable"));
            }
        }
        Ok(waiter)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        for t in &self.topics {
            self.state.hub.remove(t, self.id);
        }
    }
}

/// Writes the JSON array of a batch's events.
pub fn events_json(out: &mut String, events: &[(Topic, StoredEvent)]) {
    out.push('[');
    for (i, (t, e)) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        e.write_event(out, t.as_str());
    }
    out.push(']');
}

/// Notes a polling client in the cluster-wide list of the last minute.
async fn seen(state: &AppState, identity: &Identity, parts: &Parts) {
    let addr = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let member = format!("{}@{}", identity.sub, addr.unwrap_or_default());
    let now = relay_shared::clock::now_ms();
    let _ = relay_shared::instances::note_poller(state.bus.client(), &member, now).await;
}

/// Events after the cursor, waiting up to `wait` seconds when there are none.
#[utoipa::path(get, path = "/v1/poll", tag = "events", params(PollQuery),
    responses((status = 200, description = "{\"events\":[...],\"cursor\":\"...\",\"recovered\":true}"), (status = 400), (status = 401), (status = 403), (status = 503)),
    security(("bearer" = [])))]
pub async fn poll(
    State(state): State<AppState>,
    caller: Caller,
    parts: Parts,
    query: Result<Query<PollQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let identity = caller.user()?;
    let wait = match q.wait.as_deref().filter(|w| !w.is_empty()) {
        None => 0,
        Some(w) => w
            .parse::<u64>()
            .map_err(|_| ApiError::invalid("wait must be a whole number of seconds"))?
            .min(MAX_WAIT_SECS),
    };
    let mut start = start(
        &state,
        identity,
        q.topics.as_deref(),
        q.cursor.as_deref(),
        q.since.as_deref(),
    )
    .await?;
    seen(&state, identity, &parts).await;
    let _guard = metrics_guard();
    let resuming = start.resuming();
    let mut batch = read(&state, &mut start).await?;
    if resuming {
        m::recovery(batch.recovered);
    }
    if batch.events.is_empty() && wait > 0 && !state.draining() {
        let _permit = stream_permit(&state)?;
        let waiter = Waiter::register(&state, &start.topics).await?;
        // Anything published between the first read and the registration is
        // found by this read; anything after wakes the waiter.
        batch = read(&state, &mut start).await?;
        // A wait ends at the token's `exp` at the latest.
        let wait = Duration::from_secs(wait).min(identity.expires_in().unwrap_or(Duration::MAX));
        let deadline = tokio::time::Instant::now() + wait;
        while batch.events.is_empty() && !state.draining() {
            tokio::select! {
                _ = waiter.notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => break,
                _ = state.shutdown.cancelled() => break,
            }
            let more = read(&state, &mut start).await?;
            batch.recovered &= more.recovered;
            batch.events = more.events;
        }
    }
    m::delivered("poll", batch.events.len() as u64);
    let mut body = String::from("{\"events\":");
    events_json(&mut body, &batch.events);
    body.push_str(",\"cursor\":\"");
    body.push_str(&start.cursor.encode());
    body.push_str("\",\"recovered\":");
    body.push_str(if batch.recovered { "true" } else { "false" });
    body.push('}');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

struct InFlight;

fn metrics_guard() -> InFlight {
    metrics::gauge!(m::POLL_CLIENTS).increment(1.0);
    InFlight
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(m::POLL_CLIENTS).decrement(1.0);
    }
}
