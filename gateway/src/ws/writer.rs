//! A connection's writer: it owns the socket's sink and the delivery state
//! of each subscribed topic (replaying, then live after an id), and writes
//! what its queue holds, batching frames with `feed` and one `flush`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt};
use relay_shared::event::StreamId;
use relay_shared::topic::Topic;

use super::queue::{Outbound, Replay, WsQueue};
use crate::metrics as m;
use crate::replay::frames::merge;

/// Frames written before one flush, at most.
const MAX_BATCH: usize = 256;
/// Live events buffered per topic while its replay is read, at most.
const MAX_PENDING: usize = 4096;
/// How long the close frame may take to get out; it queues behind what the
/// client has not read yet, so a slow client gets a while to catch up to it.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

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

/// A connection's writer: the socket's sink and the per-topic delivery state.
pub struct Writer<'a> {
    queue: &'a Arc<WsQueue>,
    topics: Topics,
}

impl<'a> Writer<'a> {
    pub fn new(queue: &'a Arc<WsQueue>) -> Self {
        Self {
            queue,
            topics: Topics::default(),
        }
    }

    /// Writes queued frames until the connection closes. Heartbeat pings,
    /// idle and expiry closes and the drain come from [`super::conns`], so
    /// the loop waits only on its queue and its close signal.
    ///
    /// An `async move` block rather than an `async fn`, which would keep a
    /// second copy of `self` and `sink` for the connection's whole life.
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    pub fn run<W>(mut self, mut sink: W) -> impl Future<Output = ()> + 'a
    where
        W: Sink<Message, Error = axum::Error> + Unpin + 'a,
    {
        async move {
            let queue = self.queue;
            let closed = queue.closed();
            tokio::pin!(closed);
            loop {
                let first = tokio::select! {
                    biased;
                    _ = &mut closed => break,
                    msg = queue.pop() => msg,
                };
                let batch = async {
                    let mut written = 0u64;
                    let mut oldest_ts: Option<u64> = None;
                    written += self.handle(first, &mut sink, &mut oldest_ts).await?;
                    while (written as usize) < MAX_BATCH {
                        match queue.try_pop() {
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
            if let Some(reason) = queue.reason() {
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
                        self.queue.shed();
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
        let mut merged = merge(frames, cutoff, buffered);
        let mut n = 0;
        for frame in merged.by_ref() {
            sink.feed(Message::Text(frame)).await?;
            n += 1;
        }
        let last = merged.position();
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
