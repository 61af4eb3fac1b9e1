//! A connection's reader: client ops in order, answered through the
//! writer's queue; subscriptions (register with the hub, wait for the
//! channel, read the history, hand the replay to the writer), unsubscribes
//! and publishes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::{Stream, StreamExt};
use relay_shared::event::Since;
use relay_shared::protocol::{parse_client_frame, ClientOp, CloseReason, ErrorCode, ServerFrame};
use relay_shared::topic::Topic;
use serde_json::value::RawValue;

use super::queue::{Outbound, Replay, WsQueue};
use crate::auth::Identity;
use crate::hub::Subscriber;
use crate::limits::{Verdict, WsRate};
use crate::metrics as m;
use crate::replay::frames::cutoff;
use crate::replay::reads::ReadError;
use crate::state::AppState;

/// How long a subscription waits for its channel to be live.
const READY_WAIT: Duration = Duration::from_secs(5);
/// How long a subscription waits for its history read, queue included.
const HISTORY_WAIT: Duration = Duration::from_secs(20);

/// A connection's reader: client ops in, replies and replays out through
/// the writer's queue.
pub struct Reader<'a> {
    state: &'a AppState,
    identity: &'a Identity,
    conn_id: u64,
    queue: &'a Arc<WsQueue>,
    /// Subscribed topics (a short list: at most `RELAY_MAX_SUBSCRIPTIONS`).
    subs: Vec<Topic>,
    rate: WsRate,
}

impl<'a> Reader<'a> {
    pub fn new(
        state: &'a AppState,
        identity: &'a Identity,
        conn_id: u64,
        queue: &'a Arc<WsQueue>,
    ) -> Self {
        Self {
            state,
            identity,
            conn_id,
            queue,
            subs: Vec::new(),
            rate: state.limits.ws_limiter(),
        }
    }

    /// Gives up every subscription (when the connection has ended).
    pub fn leave(&mut self) {
        for topic in self.subs.drain(..) {
            self.state.hub.remove(&topic, self.conn_id);
            m::subscriptions(-1.0);
        }
    }

    /// Reads client frames until the client closes, or until the
    /// connection is asked to close (then waits for the writer to end it).
    pub async fn run<R>(&mut self, mut stream: R)
    where
        R: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        loop {
            let msg = tokio::select! {
                msg = stream.next() => msg,
                _ = self.queue.closed() => return std::future::pending().await,
            };
            self.queue.touch(self.state.conns.now_ms());
            if let Some(Ok(Message::Text(_) | Message::Binary(_))) = &msg {
                match self.rate.check() {
                    Verdict::Accept => {}
                    Verdict::Refuse => {
                        self.error(None, ErrorCode::RateLimit, "too many frames; slow down");
                        continue;
                    }
                    Verdict::Close => {
                        self.queue.close(CloseReason::Policy);
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
                        self.queue.close(CloseReason::TooBig);
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
        self.queue.push_or_shed(msg);
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
            queue: self.queue.clone(),
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
        entry.observe(history.info.last, &history.info.epoch);
        let recovered = history.info.recovered(since);
        if since.is_some() {
            m::recovery(recovered);
        }
        let frames = history.frames.clone();
        m::replayed("ws", frames.len());
        let subscribed = ServerFrame::Subscribed {
            id,
            topic: topic.as_str(),
            position: history.info.last.to_string(),
            epoch: &history.info.epoch,
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
            cutoff: cutoff(&history.info, since),
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
