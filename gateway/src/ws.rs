//! `GET /v1/ws`: the WebSocket session.
//!
//! Per socket, a reader and a writer run side by side (joined with
//! `select!`); when one ends, the other stops.
//!
//! - The **reader** parses client ops in order, answers them through the
//!   writer's queue, and performs subscriptions: it tells the writer a topic
//!   is starting (so live events are buffered), registers with the hub, waits
//!   for the channel to be live, reads the history after `since`, and hands
//!   the replay to the writer.
//! - The **writer** owns the socket's sink and the per-topic delivery state:
//!   it sends a replay, then the buffered live events after it (by id, so no
//!   gap and no duplicate), then live events, batching frames with `feed`
//!   and one `flush`. Its queue is bounded; the hub closes a client that lets
//!   it fill (4008).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocketUpgrade};
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use relay_shared::bus::History;
use relay_shared::event::{Since, StreamId};
use relay_shared::protocol::{parse_client_frame, ClientOp, CloseReason, ErrorCode, ServerFrame};
use relay_shared::topic::Topic;
use serde_json::value::RawValue;
use tracing::Instrument;

use crate::auth::Identity;
use crate::http::caller::Caller;
use crate::http::error::ApiError;
use crate::hub::{shed, ConnCtl, Outbound, Replay, Subscriber};
use crate::limits::{Verdict, WsRate};
use crate::metrics as m;
use crate::replay::ReadError;
use crate::state::AppState;

/// The socket's read buffer: client frames are small (it grows for a large
/// one), and a smaller buffer is less memory per idle connection.
const READ_BUFFER: usize = 512;
/// Frames written before one flush, at most.
const MAX_BATCH: usize = 256;
/// Live events buffered per topic while its replay is read, at most.
const MAX_PENDING: usize = 4096;
/// How long a subscription waits for its channel to be live.
const READY_WAIT: Duration = Duration::from_secs(5);
/// How long a subscription waits for its history read, queue included.
const HISTORY_WAIT: Duration = Duration::from_secs(20);
/// How long the close frame may take to get out; it queues behind what the
/// client has not read yet, so a slow client gets a while to catch up to it.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

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
    let write_buffer = 8 * 1024;
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
        let ctl = Arc::new(ConnCtl::new(state.config.send_queue.get()));
        let _registered = state
            .conns
            .register(conn_id, ctl.clone(), identity.expires_in());
        {
            let session_name = format!("c-{conn_id:x}");
            let welcome = ServerFrame::Welcome {
                session: &session_name,
                heartbeat_ms: state.config.heartbeat.as_millis() as u64,
            };
            ctl.push(Outbound::Frame(welcome.to_json().into_boxed_str()));
        }

        let mut reader = Reader {
            state: &state,
            identity: &identity,
            conn_id,
            ctl: &ctl,
            subs: Vec::new(),
            rate: state.limits.ws_limiter(),
        };
        let writer = Writer {
            ctl: &ctl,
            topics: Topics::default(),
        };
        tokio::select! {
            _ = reader.run(stream) => {}
            _ = writer.run(sink) => {}
        }
        drop(guards);
        for topic in reader.subs.drain(..) {
            state.hub.remove(&topic, conn_id);
            m::subscriptions(-1.0);
        }
        m::connections(-1.0);
        m::closed(ctl.reason().map_or("client", CloseReason::label));
    }
}

struct Reader<'a> {
    state: &'a AppState,
    identity: &'a Identity,
    conn_id: u64,
    ctl: &'a Arc<ConnCtl>,
    /// Subscribed topics (a short list: at most `RELAY_MAX_SUBSCRIPTIONS`).
    subs: Vec<Topic>,
    rate: WsRate,
}

impl Reader<'_> {
    async fn run<R>(&mut self, mut stream: R)
    where
        R: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        loop {
            let msg = tokio::select! {
                msg = stream.next() => msg,
                _ = self.ctl.closed() => return std::future::pending().await,
            };
            self.ctl.touch(self.state.conns.now_ms());
            if let Some(Ok(Message::Text(_) | Message::Binary(_))) = &msg {
                match self.rate.check() {
                    Verdict::Accept => {}
                    Verdict::Refuse => {
                        self.error(None, ErrorCode::RateLimit, "too many frames; slow down");
                        continue;
                    }
                    Verdict::Close => {
                        self.ctl.close(CloseReason::Policy);
                        return std::future::pending().await;
                    }
                }
            }
            match msg {
                // Boxed: handling an op (a subscribe's history read, a
                // publish) needs far more state than waiting for the next
                // frame, and an idle connection should not carry it.
                Some(Ok(Message::Text(text))) => Box::pin(self.on_text(&text)).await,
                Some(Ok(Message::Binary(_))) => self.error(
                    None,
                    ErrorCode::InvalidMessage,
                    "binary frames are not supported; send JSON text",
                ),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => return,
                Some(Err(e)) => {
                    if is_too_big(e) {
                        m::limit_hit("frame_size");
                        self.ctl.close(CloseReason::TooBig);
                        return std::future::pending().await; // the writer sends the close
                    }
                    return;
                }
            }
        }
    }

    /// Queues `msg` for the writer; a client whose queue is full is too
    /// slow and is closed (4008).
    fn send(&self, msg: Outbound) {
        self.ctl.push_or_shed(msg);
    }

    fn reply(&self, frame: ServerFrame<'_>) {
        self.send(Outbound::Frame(frame.to_json().into_boxed_str()));
    }

    fn error(&self, id: Option<&RawValue>, code: ErrorCode, message: &str) {
        m::ws_error(code);
        self.reply(ServerFrame::Error {
            id,
            code,
            message,
            retryable: code.retryable(),
        });
    }

    async fn on_text(&mut self, text: &str) {
        match parse_client_frame(text) {
            Err(e) => self.error(e.id, e.code, &e.message),
            Ok(ClientOp::Ping { id }) => self.reply(ServerFrame::Pong { id }),
            Ok(ClientOp::Subscribe {
                id,
                topic,
                since,
                epoch,
            }) => self.subscribe(id, topic, since, epoch.as_deref()).await,
            Ok(ClientOp::Unsubscribe { id, topic }) => {
                let Some(at) = self.subs.iter().position(|t| *t == topic) else {
                    return self.error(
                        id,
                        ErrorCode::NotSubscribed,
                        "not subscribed to this topic",
                    );
                };
                self.subs.swap_remove(at);
                self.state.hub.remove(&topic, self.conn_id);
                m::subscriptions(-1.0);
                self.send(Outbound::End {
                    topic: topic.clone(),
                });
                self.reply(ServerFrame::Unsubscribed {
                    id,
                    topic: topic.as_str(),
                });
            }
            Ok(ClientOp::Publish {
                id,
                topic,
                kind,
                data,
            }) => {
                if !self.identity.may_publish(&topic) {
                    return self.error(
                        id,
                        ErrorCode::Forbidden,
                        "not allowed to publish to this topic",
                    );
                }
                let data = data.unwrap_or(empty_object());
                match self.state.bus.publish(&topic, &kind, data).await {
                    Ok(p) => {
                        metrics::counter!(m::EVENTS_PUBLISHED, "route" => "ws").increment(1);
                        self.reply(ServerFrame::Ack {
                            id,
                            event_id: p.id.to_string(),
                        })
                    }
                    Err(e) if e.is_unavailable() => {
                        self.error(id, ErrorCode::Unavailable, "redis is unavailable")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "publish failed");
                        self.error(id, ErrorCode::ServerError, "publish failed")
                    }
                }
            }
        }
    }

    async fn subscribe(
        &mut self,
        id: Option<&RawValue>,
        topic: Topic,
        since: Option<Since>,
        epoch: Option<&str>,
    ) {
        let again = self.subs.contains(&topic);
        if !again && self.subs.len() >= self.state.config.max_subscriptions.get() {
            m::limit_hit("subscriptions");
            let msg = format!(
                "at most {} subscriptions per connection",
                self.state.config.max_subscriptions
            );
            return self.error(id, ErrorCode::RateLimit, &msg);
        }
        if let Err((code, msg)) = self.state.authorize_read(self.identity, &topic).await {
            return self.error(id, code, msg);
        }
        // Order matters: the writer must know the topic is replaying before
        // the hub can hand it a live event.
        self.send(Outbound::Begin {
            topic: topic.clone(),
        });
        let sub = Subscriber::Conn {
            id: self.conn_id,
            ctl: self.ctl.clone(),
        };
        let entry = self.state.hub.add(&topic, sub).await;
        if !again {
            self.subs.push(topic.clone());
            m::subscriptions(1.0);
        }
        let history = if entry.wait_ready(READY_WAIT).await {
            match tokio::time::timeout(HISTORY_WAIT, self.state.replay.read(&topic, since, epoch))
                .await
            {
                Ok(read) => read,
                Err(_) => Err(ReadError::Failed),
            }
        } else {
            Err(ReadError::Unavailable)
        };
        let history = match history {
            Ok(h) => h,
            Err(e) => {
                self.subs.retain(|t| *t != topic);
                m::subscriptions(-1.0);
                self.state.hub.remove(&topic, self.conn_id);
                self.send(Outbound::End { topic });
                // Redis connected but slow (a stampede of subscribes) is a
                // server error, still retryable; UNAVAILABLE means unreachable.
                let unavailable = e == ReadError::Unavailable && !self.state.bus.is_connected();
                let (code, msg) = if unavailable {
                    (ErrorCode::Unavailable, "redis is unavailable")
                } else {
                    (ErrorCode::ServerError, "could not read the topic's history")
                };
                return self.error(id, code, msg);
            }
        };
        entry.observe(history.last, &history.epoch);
        let recovered = history.recovered(since);
        if since.is_some() {
            m::recovery(recovered);
        }
        let cutoff = match since {
            Some(s) if !history.epoch_changed => history.last.max(s.last_seen()),
            _ => history.last,
        };
        let frames = history.frames.clone();
        m::replayed("ws", frames.len());
        let subscribed = ServerFrame::Subscribed {
            id,
            topic: topic.as_str(),
            position: history.last.to_string(),
            epoch: &history.epoch,
            recovered,
            replayed: frames.len(),
        };
        let subscribed = subscribed.to_json().into();
        let replay = Replay {
            // The hub's shared name: the writer then finds the topic of each
            // live event by pointer.
            topic: entry.topic().clone(),
            subscribed,
            frames,
            cutoff,
        };
        self.send(Outbound::Replay(Box::new(replay)));
    }
}

fn empty_object() -> &'static RawValue {
    static EMPTY: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| RawValue::from_string("{}".into()).unwrap())
}

fn is_too_big(e: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let inner = e.into_inner();
    matches!(inner.downcast_ref::<WsError>(), Some(WsError::Capacity(_)))
}

/// The notice sent to subscribers of a topic whose history was lost while
/// they were subscribed: an unsolicited `subscribed` with `recovered: false`
/// and the topic's new epoch.
pub fn lost_history_notice(topic: &Topic, history: &History) -> Utf8Bytes {
    let frame = ServerFrame::Subscribed {
        id: None,
        topic: topic.as_str(),
        position: history.last.to_string(),
        epoch: &history.epoch,
        recovered: false,
        replayed: history.events.len(),
    };
    frame.to_json().into()
}

/// Delivery state of one subscribed topic.
enum TopicState {
    /// Replay in progress: live events wait here.
    Pending(Vec<(StreamId, Utf8Bytes)>),
    /// Live: events after `last` are sent.
    Live { last: StreamId },
}

/// A writer's topics, looked up once per delivered event: a short list
/// (at most `RELAY_MAX_SUBSCRIPTIONS`), keyed by the hub's shared topic
/// name once the topic is live, so a lookup is mostly a pointer comparison
/// (a hash map per connection was more memory and, with SipHash, 5 % of a
/// gateway's fan-out CPU).
#[derive(Default)]
struct Topics(Vec<(Topic, TopicState)>);

impl Topics {
    fn position(&self, topic: &Topic) -> Option<usize> {
        let list = &self.0;
        list.iter()
            .position(|(t, _)| t.same(topic))
            .or_else(|| list.iter().position(|(t, _)| t == topic))
    }

    fn get_mut(&mut self, topic: &Topic) -> Option<&mut TopicState> {
        let at = self.position(topic)?;
        Some(&mut self.0[at].1)
    }

    fn remove(&mut self, topic: &Topic) -> Option<TopicState> {
        let at = self.position(topic)?;
        Some(self.0.swap_remove(at).1)
    }

    fn insert(&mut self, topic: Topic, state: TopicState) {
        match self.position(&topic) {
            Some(at) => self.0[at] = (topic, state),
            None => self.0.push((topic, state)),
        }
    }
}

struct Writer<'a> {
    ctl: &'a Arc<ConnCtl>,
    topics: Topics,
}

impl<'a> Writer<'a> {
    /// Writes queued frames until the connection closes. Heartbeat pings,
    /// idle and expiry closes and the drain come from [`crate::conns`], so
    /// the loop waits only on its queue and its close signal.
    ///
    /// An `async move` block rather than an `async fn`, which would keep a
    /// second copy of `self` and `sink` for the connection's whole life.
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    fn run<W>(mut self, mut sink: W) -> impl Future<Output = ()> + 'a
    where
        W: Sink<Message, Error = axum::Error> + Unpin + 'a,
    {
        async move {
            let ctl = self.ctl;
            let closed = ctl.closed();
            tokio::pin!(closed);
            loop {
                let first = tokio::select! {
                    biased;
                    _ = &mut closed => break,
                    msg = ctl.pop() => msg,
                };
                let batch = async {
                    let mut written = 0u64;
                    let mut oldest_ts: Option<u64> = None;
                    written += self.handle(first, &mut sink, &mut oldest_ts).await?;
                    while (written as usize) < MAX_BATCH {
                        match ctl.try_pop() {
                            Some(msg) => {
                                written += self.handle(msg, &mut sink, &mut oldest_ts).await?
                            }
                            None => break,
                        }
                    }
                    sink.flush().await?;
                    Ok::<_, axum::Error>((written, oldest_ts))
                };
                let result = tokio::select! {
                    r = batch => r,
                    _ = &mut closed => break,
                };
                match result {
                    Ok((written, oldest_ts)) => {
                        if written > 0 {
                            delivered(written);
                        }
                        if let Some(ts) = oldest_ts {
                            m::delivery_latency(ts);
                        }
                    }
                    Err(_) => return,
                }
            }
            if let Some(reason) = ctl.reason() {
                let frame = CloseFrame {
                    code: reason.code(),
                    reason: Utf8Bytes::from_static(reason.reason()),
                };
                let close =
                    tokio::time::timeout(CLOSE_WAIT, sink.send(Message::Close(Some(frame))));
                let _ = Box::pin(close).await;
            }
        }
    }

    /// Handles one queued item; returns how many event frames it wrote.
    async fn handle<W>(
        &mut self,
        msg: Outbound,
        sink: &mut W,
        oldest_ts: &mut Option<u64>,
    ) -> Result<u64, axum::Error>
    where
        W: Sink<Message, Error = axum::Error> + Unpin,
    {
        match msg {
            Outbound::Event(ev) => match self.topics.get_mut(&ev.topic) {
                Some(TopicState::Live { last }) if ev.id > *last => {
                    *last = ev.id;
                    oldest_ts.get_or_insert(ev.id.ms);
                    sink.feed(Message::Text(ev.frame.clone())).await?;
                    Ok(1)
                }
                Some(TopicState::Pending(buf)) => {
                    if buf.len() >= MAX_PENDING {
                        shed(self.ctl);
                    } else {
                        buf.push((ev.id, ev.frame.clone()));
                    }
                    Ok(0)
                }
                _ => Ok(0),
            },
            Outbound::Frame(frame) => {
                sink.feed(Message::Text(String::from(frame).into())).await?;
                Ok(0)
            }
            Outbound::Begin { topic } => {
                self.topics.insert(topic, TopicState::Pending(Vec::new()));
                Ok(0)
            }
            Outbound::End { topic } => {
                self.topics.remove(&topic);
                Ok(0)
            }
            // Boxed: rare, and its state would otherwise enlarge every
            // connection's writer.
            Outbound::Replay(replay) => Box::pin(self.replay(*replay, sink)).await,
            Outbound::Ping => {
                sink.feed(Message::Ping(bytes::Bytes::new())).await?;
                Ok(0)
            }
            Outbound::Reset(reset) => {
                let (topic, notice) = *reset;
                if let Some(state) = self.topics.get_mut(&topic) {
                    *state = TopicState::Live {
                        last: StreamId::ZERO,
                    };
                    sink.feed(Message::Text(notice)).await?;
                }
                Ok(0)
            }
        }
    }

    /// Sends a subscription's `subscribed`, its replay, then the live events
    /// buffered meanwhile that the replay did not cover; the topic is live
    /// from then on. Returns how many event frames it wrote.
    async fn replay<W>(&mut self, replay: Replay, sink: &mut W) -> Result<u64, axum::Error>
    where
        W: Sink<Message, Error = axum::Error> + Unpin,
    {
        let Replay {
            topic,
            subscribed,
            frames,
            cutoff,
        } = replay;
        let buffered = match self.topics.remove(&topic) {
            Some(TopicState::Pending(buf)) => buf,
            _ => Vec::new(),
        };
        sink.feed(Message::Text(subscribed)).await?;
        let mut last = cutoff;
        let mut n = 0;
        for (id, frame) in frames.iter() {
            sink.feed(Message::Text(frame.clone())).await?;
            last = last.max(*id);
            n += 1;
        }
        for (id, frame) in buffered {
            if id > last {
                sink.feed(Message::Text(frame)).await?;
                last = id;
                n += 1;
            }
        }
        self.topics.insert(topic, TopicState::Live { last });
        Ok(n)
    }
}

fn delivered(n: u64) {
    static COUNTER: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
    COUNTER
        .get_or_init(|| metrics::counter!(m::EVENTS_DELIVERED, "transport" => "ws"))
        .increment(n);
}
