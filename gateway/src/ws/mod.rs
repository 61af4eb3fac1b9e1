//! `GET /v1/ws`: the WebSocket connection, from the upgrade to the close.
//!
//! Per socket, a reader and a writer run side by side (joined with
//! `select!`); when one ends, the other stops.
//!
//! - The [`reader`] parses client ops in order, answers them through the
//!   writer's queue, and performs subscriptions: it tells the writer a topic
//!   is starting (so live events are buffered), registers with the hub, waits
//!   for the channel to be live, reads the history after `since`, and hands
//!   the replay to the writer.
//! - The [`writer`] owns the socket's sink and the per-topic delivery state:
//!   it sends a replay, then the buffered live events after it (by id, so no
//!   gap and no duplicate), then live events, batching frames with `feed`
//!   and one `flush`.
//! - The [`queue`] between them is bounded; a client that lets it fill is
//!   shed (4008).
//! - [`conns`] keeps every open connection: heartbeat pings, idle and
//!   expiry closes, the drain.

pub mod conns;
pub mod queue;
pub mod reader;
pub mod writer;

use std::future::Future;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, Stream, StreamExt};
use relay_shared::protocol::{CloseReason, ErrorCode, ServerFrame};
use tracing::Instrument;

use self::queue::{Outbound, WsQueue};
use self::reader::Reader;
use self::writer::Writer;
use crate::auth::Identity;
use crate::http::caller::Caller;
use crate::http::error::ApiError;
use crate::metrics as m;
use crate::state::AppState;

/// The socket's read buffer: client frames are small (it grows for a large
/// one), and a smaller buffer is less memory per idle connection.
const READ_BUFFER: usize = 512;
/// The socket's write buffer; frames beyond it wait in the send queue.
const WRITE_BUFFER: usize = 8 * 1024;

/// The upgrade handler: authenticate, admit, then run the session.
pub async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    ws: WebSocketUpgrade,
    parts: Parts,
) -> Response {
    let identity = match caller.user() {
        Ok(id) => id.clone(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Some(origin) = parts.headers.get(axum::http::header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| state.config.allowed_origins.allows(o));
        if !allowed {
            m::limit_hit("origin");
            return ApiError::forbidden("origin not allowed").into_response();
        }
    }
    if state.draining() {
        return ApiError::unavailable("gateway is draining").into_response();
    }
    let Some(permit) = state.admit() else {
        m::limit_hit("connections");
        return ApiError::unavailable("gateway is at its connection limit")
            .with_retry_after(5)
            .into_response();
    };
    let ip = state.client_ip(&parts);
    let slot = match state.limits.admit_conn(&identity.sub, ip) {
        Ok(slot) => slot,
        Err(msg) => {
            return ApiError::new(ErrorCode::RateLimit, msg)
                .with_retry_after(5)
                .into_response()
        }
    };
    let cfg = &state.config;
    let frame = cfg.max_frame_bytes as usize;
    let write_buffer = WRITE_BUFFER;
    let addr = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(write_buffer)
        .max_write_buffer_size(write_buffer + 2 * frame + 4096)
        .max_message_size(frame)
        .max_frame_size(frame)
        .on_upgrade(move |socket| {
            let conn_id = state.hub.next_id();
            let span =
                tracing::info_span!("conn", conn_id, client.addr = ?addr, user = %identity.sub);
            let tracker = state.tracker.clone();
            let (sink, stream) = socket.split();
            // A task of its own, so the upgrade's future (and what it holds)
            // is freed now rather than living as long as the connection.
            let session = session(sink, stream, state, identity, conn_id, (permit, slot));
            tracker.spawn(session.instrument(span));
            std::future::ready(())
        })
}

/// Runs one session over any sink and stream of WebSocket messages,
/// holding `guards` (admission permits) until it ends.
///
/// This future lives as long as the connection, so what it keeps across
/// its awaits is memory per connection: handling an op is boxed, and so is
/// anything else an idle connection does not need.
///
/// A plain function returning an `async move` block, not an `async fn`: an
/// `async fn` keeps a second copy of its arguments in its future.
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub fn session<W, R>(
    sink: W,
    stream: R,
    state: AppState,
    identity: Identity,
    conn_id: u64,
    guards: impl Send,
) -> impl Future<Output = ()>
where
    W: Sink<Message, Error = axum::Error> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    async move {
        m::connections(1.0);
        let queue = Arc::new(WsQueue::new(state.config.send_queue.get()));
        let _registered = state
            .conns
            .register(conn_id, queue.clone(), identity.expires_in());
        {
            let session_name = format!("c-{conn_id:x}");
            let welcome = ServerFrame::Welcome {
                session: &session_name,
                heartbeat_ms: state.config.heartbeat.as_millis() as u64,
            };
            queue.push(Outbound::Frame(welcome.to_json().into_boxed_str()));
        }

        let mut reader = Reader::new(&state, &identity, conn_id, &queue);
        let writer = Writer::new(&queue);
        tokio::select! {
            _ = reader.run(stream) => {}
            _ = writer.run(sink) => {}
        }
        drop(guards);
        reader.leave();
        m::connections(-1.0);
        m::closed(queue.reason().map_or("client", CloseReason::label));
    }
}
