//! `GET /v1/poll`: events over plain HTTP, with long-polling.
//!
//! Polling reads the same streams as WebSocket replay, so any gateway serves
//! any poll: the cursor carries each topic's epoch and last id.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use relay_shared::bus::StoredEvent;
use relay_shared::topic::Topic;

use super::caller::Caller;
use super::error::ApiError;
use super::reads::{start, stream_permit, ReadQuery};
use crate::auth::Identity;
use crate::hub::Waiter;
use crate::metrics as m;
use crate::replay::cursor::read;
use crate::state::AppState;

/// Longest long-poll wait, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

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
#[utoipa::path(get, path = "/v1/poll", tag = "events", params(ReadQuery),
    responses((status = 200, description = "{\"events\":[...],\"cursor\":\"...\",\"recovered\":true}"), (status = 400), (status = 401), (status = 403), (status = 503)),
    security(("bearer" = [])))]
pub async fn poll(
    State(state): State<AppState>,
    caller: Caller,
    parts: Parts,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
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
    let mut batch = read(&state.bus, &mut start).await?;
    if resuming {
        m::recovery(batch.recovered);
    }
    if batch.events.is_empty() && wait > 0 && !state.draining() {
        let _permit = stream_permit(&state)?;
        let waiter = Waiter::register(&state.hub, &start.topics)
            .await
            .map_err(|_| ApiError::unavailable("redis is unavailable"))?;
        // Anything published between the first read and the registration is
        // found by this read; anything after wakes the waiter.
        batch = read(&state.bus, &mut start).await?;
        // A wait ends at the token's `exp` at the latest.
        let wait = Duration::from_secs(wait).min(identity.expires_in().unwrap_or(Duration::MAX));
        let deadline = tokio::time::Instant::now() + wait;
        while batch.events.is_empty() && !state.draining() {
            tokio::select! {
                _ = waiter.notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => break,
                _ = state.shutdown.cancelled() => break,
            }
            let more = read(&state.bus, &mut start).await?;
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
