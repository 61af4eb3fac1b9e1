//! `GET /v1/sse`: Server-Sent Events.
//!
//! Each event's SSE `id` is a cursor over all the stream's topics (epochs
//! included), so a browser's automatic `Last-Event-ID` resumes with no loss;
//! `?cursor=` does the same for a first connection. When a resume cannot be
//! vouched for, an event named `reset` with `{"recovered":false}` comes
//! first: the client should reload its state.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

use super::caller::Caller;
use super::error::ApiError;
use super::poll::{self, PollQuery, Waiter};
use crate::metrics as m;
use crate::state::AppState;

/// Events buffered for one SSE stream before the sender waits.
const SSE_BUFFER: usize = 256;

/// Open an SSE stream of the topics' events.
#[utoipa::path(get, path = "/v1/sse", tag = "events", params(PollQuery),
    responses((status = 200, description = "text/event-stream"), (status = 400), (status = 401), (status = 403), (status = 503)),
    security(("bearer" = [])))]
pub async fn sse(
    State(state): State<AppState>,
    caller: Caller,
    parts: Parts,
    query: Result<Query<PollQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let identity = caller.user()?;
    let last_event_id = parts
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let cursor = last_event_id.or(q.cursor.as_deref());
    let mut start = poll::start(
        &state,
        identity,
        q.topics.as_deref(),
        cursor,
        q.since.as_deref(),
    )
    .await?;
    if state.draining() {
        return Err(ApiError::unavailable("gateway is draining"));
    }
    let permit = poll::stream_permit(&state)?;
    let waiter = Waiter::register(&state, &start.topics).await?;
    let mut resuming = start.resuming();
    // Fix the starting point before answering, so nothing published after
    // the client sees the stream open is missed.
    let mut first = Some(poll::read(&state, &mut start).await?);
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(SSE_BUFFER);
    let task_state = state.clone();
    let span = tracing::info_span!("sse", user = %identity.sub, topics = start.topics.len());
    // The stream ends at the token's `exp`, like a WebSocket (4001): the
    // client reopens it with a fresh token and `Last-Event-ID`.
    let expires_at = identity
        .expires_in()
        .map(|d| tokio::time::Instant::now() + d);
    state.tracker.spawn(
        async move {
            let state = task_state;
            let _permit = permit;
            metrics::gauge!(m::SSE_CLIENTS).increment(1.0);
            let _ = tx.send(Ok(Event::default().comment("connected"))).await;
            let expired = async {
                match expires_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(expired);
            let mut buf = String::new();
            loop {
                let batch = match first.take() {
                    Some(b) => b,
                    None => match poll::read(&state, &mut start).await {
                        Ok(b) => b,
                        Err(_) => break, // Redis away: the client reconnects with Last-Event-ID
                    },
                };
                if std::mem::take(&mut resuming) {
                    m::recovery(batch.recovered);
                }
                if !batch.recovered {
                    let _ = tx
                        .send(Ok(Event::default()
                            .event("reset")
                            .data("{\"recovered\":false}")))
                        .await;
                }
                m::delivered("sse", batch.events.len() as u64);
                // Advance a copy of the cursor event by event, so each SSE id
                // names exactly what the client has.
                let mut per_event = start_positions(&start, &batch);
                for (t, ev) in &batch.events {
                    let epoch = start
                        .cursor
                        .get(t)
                        .map(|p| p.epoch.clone())
                        .unwrap_or_default();
                    per_event.set(t, &epoch, ev.id);
                    buf.clear();
                    ev.write_event(&mut buf, t.as_str());
                    let event = Event::default().id(per_event.encode()).data(buf.as_str());
                    if tx.send(Ok(event)).await.is_err() {
                        return finish();
                    }
                }
                tokio::select! {
                    _ = waiter.notify.notified() => {}
                    _ = tx.closed() => break,
                    _ = state.shutdown.cancelled() => break,
                    _ = &mut expired => {
                        let _ = tx
                            .send(Ok(Event::default()
                                .event("expired")
                                .data("{\"code\":\"UNAUTHORIZED\",\"message\":\"token expired\"}")))
                            .await;
                        break;
                    }
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
            }
            finish()
        }
        .instrument(span),
    );
    let stream = ReceiverStream::new(rx);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn finish() {
    metrics::gauge!(m::SSE_CLIENTS).decrement(1.0);
}

/// The cursor as it stood before a batch: the batch's cursor with each topic
/// that has events in the batch set back to just before its first event.
fn start_positions(start: &poll::Start, batch: &poll::Batch) -> relay_shared::cursor::Cursor {
    let mut c = start.cursor.clone();
    for p in c.positions.iter_mut() {
        if let Some((_, first)) = batch.events.iter().find(|(t, _)| *t == p.topic) {
            // Any id from the previous position up to just below the first
            // event names the same place; the largest is at hand.
            p.id = prev(first.id);
        }
    }
    c
}

fn prev(id: relay_shared::event::StreamId) -> relay_shared::event::StreamId {
    use relay_shared::event::StreamId;
    if id.seq > 0 {
        StreamId::new(id.ms, id.seq - 1)
    } else if id.ms > 0 {
        StreamId::new(id.ms - 1, u64::MAX)
    } else {
        StreamId::ZERO
    }
}
