//! Local interest in topics and the fan-out of live events to local
//! subscribers; the gateway's one Redis subscriber lives in [`pubsub`].
//!
//! - A topic's channel is subscribed while at least one local subscriber
//!   (a WebSocket subscription or a waiting poll/SSE request) is interested
//!   in it; the pub/sub task alone issues `SUBSCRIBE` and `UNSUBSCRIBE`, in
//!   order, batched.
//! - Each live event arrives once per gateway as a ready-made frame; the
//!   dispatcher hands the same bytes (reference counted) to every local
//!   subscriber without waiting: a connection whose send queue is full is
//!   shed (4008); nobody else waits for it.
//! - The dispatcher remembers the last id it delivered per topic. After Redis
//!   comes back the pub/sub task resubscribes every channel and delivers each
//!   topic's history after that id (see [`crate::replay::catch_up`]), so
//!   events published during the outage still arrive, once.

pub mod pubsub;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use fred::prelude::*;
use relay_shared::event::StreamId;
use relay_shared::topic::Topic;
use tokio::sync::{mpsc, watch, Notify};

use crate::metrics as m;
use crate::ws::queue::{LiveEvent, Outbound, WsQueue};

/// One local party interested in a topic.
#[derive(Debug, Clone)]
pub enum Subscriber {
    /// A WebSocket connection's subscription.
    Conn { id: u64, queue: Arc<WsQueue> },
    /// A poll or SSE request waiting for anything new.
    Waiter { id: u64, notify: Arc<Notify> },
}

impl Subscriber {
    fn id(&self) -> u64 {
        match self {
            Subscriber::Conn { id, .. } | Subscriber::Waiter { id, .. } => *id,
        }
    }

    fn is_conn(&self) -> bool {
        matches!(self, Subscriber::Conn { .. })
    }
}

/// A topic with local interest.
#[derive(Debug)]
pub struct TopicEntry {
    topic: Topic,
    subs: Mutex<Vec<Subscriber>>,
    /// True while the channel subscription is live in Redis.
    ready: watch::Sender<bool>,
    /// Where the topic stands, for de-duplication and catch-up.
    track: Mutex<Track>,
}

#[derive(Debug, Default, Clone)]
struct Track {
    /// The last id dispatched live (later ids only are dispatched).
    dispatched: StreamId,
    /// The latest position a subscriber's history read found.
    floor: StreamId,
    /// The topic's epoch as last seen.
    epoch: Option<Arc<str>>,
}

impl TopicEntry {
    /// The topic's name as the hub shares it (live events carry this one).
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// Waits until the topic's channel is subscribed, up to `wait`.
    pub async fn wait_ready(&self, wait: Duration) -> bool {
        let mut rx = self.ready.subscribe();
        tokio::time::timeout(wait, rx.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Records what a subscriber's history read found, so a resync after a
    /// Redis outage knows where this topic stood.
    pub fn observe(&self, position: StreamId, epoch: &str) {
        let mut track = self.track.lock().unwrap();
        track.floor = track.floor.max(position);
        if track.epoch.as_deref() != Some(epoch) {
            track.epoch = Some(Arc::from(epoch));
        }
    }
}

/// A change of local interest, for the pub/sub task.
enum Cmd {
    Subscribe(Topic),
    Release(Topic),
}

/// The gateway's topic registry and pub/sub reader; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    topics: RwLock<HashMap<Topic, Arc<TopicEntry>>>,
    cmd_tx: mpsc::Sender<Cmd>,
    cmd_rx: Mutex<Option<mpsc::Receiver<Cmd>>>,
    subscriber: Client,
    sharded: bool,
    pubsub_up: AtomicBool,
    next_id: AtomicU64,
    /// Connection subscriptions held (waiters excepted).
    subscriptions: AtomicUsize,
}

impl Hub {
    pub fn new(subscriber: Client, sharded: bool) -> Self {
        let (cmd_tx, cmd_rx) = mpsc::channel(16 * 1024);
        Self {
            inner: Arc::new(HubInner {
                topics: RwLock::new(HashMap::new()),
                cmd_tx,
                cmd_rx: Mutex::new(Some(cmd_rx)),
                subscriber,
                sharded,
                pubsub_up: AtomicBool::new(false),
                next_id: AtomicU64::new(1),
                subscriptions: AtomicUsize::new(0),
            }),
        }
    }

    /// A process-unique id for a subscriber.
    pub fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the pub/sub connection is up and every channel resubscribed.
    pub fn pubsub_up(&self) -> bool {
        self.inner.pubsub_up.load(Ordering::Acquire) && self.inner.subscriber.is_connected()
    }

    /// Every topic entry with local interest, taken out of the lock.
    pub(crate) fn entries(&self) -> Vec<Arc<TopicEntry>> {
        self.inner
            .topics
            .read()
            .unwrap()
            .values()
            .cloned()
            .collect()
    }

    /// Topics with local interest.
    pub fn topic_count(&self) -> usize {
        self.inner.topics.read().unwrap().len()
    }

    /// Topic subscriptions held by connections.
    pub fn subscriptions(&self) -> usize {
        self.inner.subscriptions.load(Ordering::Relaxed)
    }

    /// Registers interest in a topic; the channel is subscribed if needed.
    pub async fn add(&self, topic: &Topic, sub: Subscriber) -> Arc<TopicEntry> {
        let (entry, created) = {
            let mut topics = self.inner.topics.write().unwrap();
            let mut created = false;
            let entry = topics
                .entry(topic.clone())
                .or_insert_with(|| {
                    created = true;
                    Arc::new(TopicEntry {
                        topic: topic.clone(),
                        subs: Mutex::new(Vec::new()),
                        ready: watch::channel(false).0,
                        track: Mutex::new(Track::default()),
                    })
                })
                .clone();
            {
                let mut subs = entry.subs.lock().unwrap();
                if !subs.iter().any(|s| s.id() == sub.id()) {
                    if sub.is_conn() {
                        self.inner.subscriptions.fetch_add(1, Ordering::Relaxed);
                    }
                    subs.push(sub);
                }
            }
            (entry, created)
        };
        if created {
            metrics::gauge!(m::TOPICS).increment(1.0);
            // The pub/sub task retries topics it has not subscribed yet on its
            // sweep, so a full command queue only delays the subscription.
            let _ = self.inner.cmd_tx.send(Cmd::Subscribe(topic.clone())).await;
        }
        entry
    }

    /// Removes a subscriber from a topic; the channel is released when no
    /// local interest is left.
    pub fn remove(&self, topic: &Topic, sub_id: u64) {
        let entry = self.inner.topics.read().unwrap().get(topic).cloned();
        if let Some(entry) = entry {
            let empty = {
                let mut subs = entry.subs.lock().unwrap();
                if let Some(at) = subs.iter().position(|s| s.id() == sub_id) {
                    if subs.remove(at).is_conn() {
                        self.inner.subscriptions.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                subs.is_empty()
            };
            if empty {
                let _ = self.inner.cmd_tx.try_send(Cmd::Release(topic.clone()));
            }
        }
    }

    /// Hands one live event frame to every local subscriber of its topic.
    pub(crate) fn dispatch(&self, topic: &str, id: StreamId, frame: &Utf8Bytes) {
        let Some(entry) = self.inner.topics.read().unwrap().get(topic).cloned() else {
            return;
        };
        {
            let mut track = entry.track.lock().unwrap();
            if id <= track.dispatched {
                return; // already delivered (a catch-up overlapping live delivery)
            }
            track.dispatched = id;
        }
        let event = Arc::new(LiveEvent {
            topic: entry.topic.clone(),
            id,
            frame: frame.clone(),
        });
        let subs = entry.subs.lock().unwrap();
        for sub in subs.iter() {
            match sub {
                Subscriber::Conn { queue, .. } => {
                    queue.push_or_shed(Outbound::Event(event.clone()))
                }
                Subscriber::Waiter { notify, .. } => notify.notify_one(),
            }
        }
    }
}

/// Interest in a set of topics that wakes a waiting poll or SSE reader;
/// released on drop.
pub struct Waiter {
    hub: Hub,
    topics: Vec<Topic>,
    id: u64,
    pub notify: Arc<Notify>,
}

/// A topic's channel did not become live in time (Redis is away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotReady;

/// How long a waiter waits for its topics' channels to be live.
const WAITER_READY_WAIT: Duration = Duration::from_secs(5);

impl Waiter {
    /// Registers interest in `topics` and waits until every topic's channel
    /// is live.
    pub async fn register(hub: &Hub, topics: &[Topic]) -> Result<Waiter, NotReady> {
        let notify = Arc::new(Notify::new());
        let id = hub.next_id();
        let waiter = Waiter {
            hub: hub.clone(),
            topics: topics.to_vec(),
            id,
            notify: notify.clone(),
        };
        let mut entries = Vec::with_capacity(topics.len());
        for t in topics {
            let sub = Subscriber::Waiter {
                id,
                notify: notify.clone(),
            };
            entries.push(hub.add(t, sub).await);
        }
        for e in entries {
            if !e.wait_ready(WAITER_READY_WAIT).await {
                return Err(NotReady);
            }
        }
        Ok(waiter)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        for t in &self.topics {
            self.hub.remove(t, self.id);
        }
    }
}
