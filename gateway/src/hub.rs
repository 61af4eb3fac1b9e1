//! Local interest in topics, the gateway's one Redis subscriber, and the
//! fan-out of live events to local connections.
//!
//! - A topic's channel is subscribed while at least one local subscriber
//!   (a WebSocket subscription or a waiting poll/SSE request) is interested
//!   in it; the [`pubsub`](Hub::run) task alone issues `SUBSCRIBE` and
//!   `UNSUBSCRIBE`, in order, batched.
//! - Each live event arrives once per gateway as a ready-made frame; the
//!   dispatcher hands the same bytes (reference counted) to every local
//!   subscriber with a non-blocking `try_send`. A connection whose queue is
//!   full is closed with 4008; nobody else waits for it.
//! - The dispatcher remembers the last id it delivered per topic. After Redis
//!   comes back it resubscribes every channel and reads each topic's history
//!   after that id, so events published during the outage still arrive, once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use fred::prelude::*;
use futures_util::task::AtomicWaker;
use relay_shared::bus::Bus;
use relay_shared::event::{frame_id, Since, StreamId};
use relay_shared::keys;
use relay_shared::protocol::CloseReason;
use relay_shared::topic::Topic;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::metrics as m;

/// Channels subscribed or unsubscribed in one Redis command at most.
const SUBSCRIBE_BATCH: usize = 1000;

/// How long a catch-up after a reconnect waits for the command connection
/// before the topics it could not read are resumed by their clients.
const CATCH_UP_WAIT: Duration = Duration::from_secs(3);

/// How often empty topics are released and pending subscriptions retried.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// What a connection's writer receives. Kept to three words, so a queue's
/// memory stays small (the queue allocates its slots in blocks of 32).
#[derive(Debug)]
pub enum Outbound {
    /// A live event of a topic, shared by every local subscriber.
    Event(Arc<LiveEvent>),
    /// A reply or notice to send as is.
    Frame(Box<str>),
    /// A subscription starts: buffer its live events until its replay arrives.
    Begin { topic: Topic },
    /// A subscription's replay: send `subscribed`, the replayed frames, then
    /// the buffered live events after `cutoff`.
    Replay(Box<Replay>),
    /// A subscription ended (or failed): forget the topic.
    End { topic: Topic },
    /// The topic's history was lost while subscribed: send the notice and
    /// accept any id from now on.
    Reset(Box<(Topic, Utf8Bytes)>),
    /// A heartbeat ping is due.
    Ping,
}

const _: () = assert!(std::mem::size_of::<Outbound>() <= 24);

/// One live event as the hub hands it out: built once per event per gateway.
#[derive(Debug)]
pub struct LiveEvent {
    pub topic: Topic,
    pub id: StreamId,
    pub frame: Utf8Bytes,
}

/// A subscription's replay (boxed in [`Outbound`] to keep queue slots small).
#[derive(Debug)]
pub struct Replay {
    pub topic: Topic,
    pub subscribed: Utf8Bytes,
    /// Shared by every subscriber whose read was shared.
    pub frames: Arc<[(StreamId, Utf8Bytes)]>,
    /// Buffered live events at or below this id were covered by the replay.
    pub cutoff: StreamId,
}

/// A connection's send queue, its close signal (and why), and when it was
/// last heard from.
///
/// The queue is a bounded deque behind a lock held only to push or pop one
/// item, with the writer's waker beside it: no memory until something is
/// queued (a channel would allocate a block of slots and a padded header per
/// connection, about 1.3 KB), and it gives its memory back after a burst.
#[derive(Debug)]
pub struct ConnCtl {
    queue: Mutex<VecDeque<Outbound>>,
    capacity: usize,
    writer: AtomicWaker,
    close: CancellationToken,
    /// Why it closes ([`CloseReason::to_u8`]; 0 while open).
    reason: AtomicU8,
    /// When the client last sent anything, in [`crate::conns::Conns::now_ms`].
    last_seen: AtomicU64,
}

/// Deque capacity a drained queue keeps; more is given back.
const KEEP_CAPACITY: usize = 16;

impl ConnCtl {
    /// A connection whose queue holds at most `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            writer: AtomicWaker::new(),
            close: CancellationToken::new(),
            reason: AtomicU8::new(0),
            last_seen: AtomicU64::new(0),
        }
    }

    /// Queues `msg` for the writer; `false` (and `msg` dropped) when the
    /// queue is full.
    pub fn push(&self, msg: Outbound) -> bool {
        {
            let mut queue = self.queue.lock().unwrap();
            if queue.len() >= self.capacity {
                return false;
            }
            queue.push_back(msg);
        }
        self.writer.wake();
        true
    }

    /// Queues `msg`, or closes the connection with 4008 when its queue is
    /// full: a client that lets its queue fill is too slow to keep.
    pub fn push_or_shed(&self, msg: Outbound) {
        if !self.push(msg) {
            shed(self);
        }
    }

    /// The next queued item, if any.
    pub fn try_pop(&self) -> Option<Outbound> {
        let mut queue = self.queue.lock().unwrap();
        let msg = queue.pop_front();
        if queue.is_empty() && queue.capacity() > KEEP_CAPACITY {
            queue.shrink_to(KEEP_CAPACITY);
        }
        msg
    }

    /// Waits for the next queued item (for the connection's one writer).
    pub async fn pop(&self) -> Outbound {
        std::future::poll_fn(|cx| {
            if let Some(msg) = self.try_pop() {
                return std::task::Poll::Ready(msg);
            }
            self.writer.register(cx.waker());
            // Again: a push between the first look and the registration
            // woke no one.
            match self.try_pop() {
                Some(msg) => std::task::Poll::Ready(msg),
                None => std::task::Poll::Pending,
            }
        })
        .await
    }

    /// Records that the client sent something at `now_ms`.
    pub fn touch(&self, now_ms: u64) {
        self.last_seen.store(now_ms, Ordering::Relaxed);
    }

    pub fn last_seen(&self) -> u64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// Asks the connection to close for `reason`; the first reason wins.
    /// Returns whether this call was the first.
    pub fn close(&self, reason: CloseReason) -> bool {
        let first = self
            .reason
            .compare_exchange(0, reason.to_u8(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.close.cancel();
        first
    }

    /// Why the server closes the connection; `None` while it is open or
    /// when the client closed it.
    pub fn reason(&self) -> Option<CloseReason> {
        CloseReason::from_u8(self.reason.load(Ordering::Acquire))
    }

    pub fn closed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.close.cancelled()
    }
}

/// Closes a client that fell behind with 4008, counting it once.
pub fn shed(ctl: &ConnCtl) {
    if ctl.close(CloseReason::TooSlow) {
        metrics::counter!(m::SLOW_CLOSES).increment(1);
    }
}

/// One local party interested in a topic.
#[derive(Debug, Clone)]
pub enum Subscriber {
    /// A WebSocket connection's subscription.
    Conn { id: u64, ctl: Arc<ConnCtl> },
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
    fn entries(&self) -> Vec<Arc<TopicEntry>> {
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
    fn dispatch(&self, topic: &str, id: StreamId, frame: &Utf8Bytes) {
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
                Subscriber::Conn { ctl, .. } => ctl.push_or_shed(Outbound::Event(event.clone())),
                Subscriber::Waiter { notify, .. } => notify.notify_one(),
            }
        }
    }

    /// Runs the pub/sub task until `shutdown`: reads live events, applies
    /// subscription changes, resubscribes and catches up after reconnects.
    pub async fn run(self, bus: Bus, shutdown: CancellationToken) {
        let Some(mut cmd_rx) = self.inner.cmd_rx.lock().unwrap().take() else {
            return;
        };
        let client = self.inner.subscriber.clone();
        let mut messages = client.message_rx();
        let mut reconnects = client.reconnect_rx();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending: HashSet<Topic> = HashSet::new();
        let mut releases: HashSet<Topic> = HashSet::new();
        // The first connection: subscribe whatever is registered already.
        if client.is_connected() {
            self.resync(&bus, false).await;
        }
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                msg = messages.recv() => match msg {
                    Ok(msg) => self.on_message(msg),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => self.lagged(n),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = reconnects.recv() => {
                    metrics::counter!(m::PUBSUB_RESYNCS).increment(1);
                    self.resync(&bus, true).await;
                }
                cmd = cmd_rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let mut batch = vec![cmd];
                    while batch.len() < SUBSCRIBE_BATCH {
                        match cmd_rx.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    for cmd in batch {
                        match cmd {
                            Cmd::Subscribe(t) => { releases.remove(&t); pending.insert(t); }
                            Cmd::Release(t) => { releases.insert(t); }
                        }
                    }
                    self.apply(&mut pending, &mut releases).await;
                }
                _ = sweep.tick() => {
                    self.collect_unsubscribed(&mut pending);
                    self.collect_empty(&mut releases);
                    self.apply(&mut pending, &mut releases).await;
                    if !client.is_connected() {
                        self.inner.pubsub_up.store(false, Ordering::Release);
                    } else if !self.inner.pubsub_up.load(Ordering::Acquire) {
                        self.resync(&bus, true).await;
                    }
                }
            }
        }
    }

    fn on_message(&self, msg: fred::types::Message) {
        let Some(topic) = keys::topic_of_channel(&msg.channel) else {
            return;
        };
        let bytes = match msg.value {
            Value::String(s) => s.into_inner(),
            Value::Bytes(b) => b,
            _ => return,
        };
        let Some(id) = frame_id(&bytes) else { return };
        let Ok(frame) = Utf8Bytes::try_from(bytes) else {
            return;
        };
        metrics::counter!(m::EVENTS_RECEIVED).increment(1);
        self.dispatch(topic, id, &frame);
    }

    /// The reader fell behind Redis and lost messages it cannot name: close
    /// every connection so each resumes with `since` and loses nothing.
    fn lagged(&self, n: u64) {
        tracing::warn!(
            lost = n,
            "pub/sub reader fell behind; closing connections so they resume"
        );
        metrics::counter!(m::PUBSUB_LAGGED).increment(1);
        let entries = self.entries();
        for entry in entries {
            for sub in entry.subs.lock().unwrap().iter() {
                match sub {
                    Subscriber::Conn { ctl, .. } => {
                        shed(ctl);
                    }
                    Subscriber::Waiter { notify, .. } => notify.notify_one(),
                }
            }
        }
    }

    /// Topics registered whose channel is not subscribed yet.
    fn collect_unsubscribed(&self, pending: &mut HashSet<Topic>) {
        let topics = self.inner.topics.read().unwrap();
        for (t, e) in topics.iter() {
            if !*e.ready.borrow() {
                pending.insert(t.clone());
            }
        }
    }

    /// Topics whose last local subscriber left.
    fn collect_empty(&self, releases: &mut HashSet<Topic>) {
        let topics = self.inner.topics.read().unwrap();
        for (t, e) in topics.iter() {
            if e.subs.lock().unwrap().is_empty() {
                releases.insert(t.clone());
            }
        }
    }

    /// Applies pending subscribes and releases, in that order of truth: a
    /// topic is unsubscribed only if it is still empty when we get to it.
    async fn apply(&self, pending: &mut HashSet<Topic>, releases: &mut HashSet<Topic>) {
        if !releases.is_empty() {
            let mut gone = Vec::new();
            {
                let mut topics = self.inner.topics.write().unwrap();
                for t in releases.drain() {
                    let empty = topics
                        .get(&t)
                        .is_some_and(|e| e.subs.lock().unwrap().is_empty());
                    if empty {
                        topics.remove(&t);
                        pending.remove(&t);
                        gone.push(keys::channel(t.as_str()));
                    }
                }
            }
            if !gone.is_empty() {
                metrics::gauge!(m::TOPICS).decrement(gone.len() as f64);
                for chunk in gone.chunks(SUBSCRIBE_BATCH) {
                    let r = if self.inner.sharded {
                        per_slot(&self.inner.subscriber, chunk.to_vec(), false).await
                    } else {
                        self.inner.subscriber.unsubscribe(chunk.to_vec()).await
                    };
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "unsubscribe failed (the connection will be reset)");
                    }
                }
            }
        }
        if pending.is_empty() || !self.inner.subscriber.is_connected() {
            return;
        }
        let entries: Vec<Arc<TopicEntry>> = {
            let topics = self.inner.topics.read().unwrap();
            pending
                .iter()
                .filter_map(|t| topics.get(t).cloned())
                .collect()
        };
        pending.clear();
        if self.subscribe(&entries).await.is_err() {
            pending.extend(entries.iter().map(|e| e.topic.clone()));
        }
    }

    async fn subscribe(&self, entries: &[Arc<TopicEntry>]) -> Result<(), fred::error::Error> {
        for chunk in entries.chunks(SUBSCRIBE_BATCH) {
            let channels: Vec<String> = chunk
                .iter()
                .map(|e| keys::channel(e.topic.as_str()))
                .collect();
            if self.inner.sharded {
                per_slot(&self.inner.subscriber, channels, true).await?;
            } else {
                self.inner.subscriber.subscribe(channels).await?;
            }
            for e in chunk {
                e.ready.send_replace(true);
            }
        }
        Ok(())
    }

    /// After (re)connecting: subscribe every channel with local interest, then
    /// deliver what was published while the subscription was down.
    async fn resync(&self, bus: &Bus, catch_up: bool) {
        self.inner.pubsub_up.store(false, Ordering::Release);
        let entries = self.entries();
        for e in &entries {
            e.ready.send_replace(false);
        }
        if let Err(e) = self.subscribe(&entries).await {
            tracing::warn!(error = %e, "resubscribing after reconnect failed; will retry");
            return;
        }
        self.inner.pubsub_up.store(true, Ordering::Release);
        if catch_up {
            let mut failed = self.catch_up_all(bus, &entries).await;
            if !failed.is_empty() {
                // The command connection may come back a moment after the
                // subscriber (a cluster fail-over moves both): wait for it
                // once, briefly, then try those topics again.
                let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
                while !bus.is_connected() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                failed = self.catch_up_all(bus, &failed).await;
            }
            // Live events follow from here: a topic not caught up would
            // leave a gap, so its connections resume with `since` instead.
            for entry in &failed {
                for sub in entry.subs.lock().unwrap().iter() {
                    match sub {
                        Subscriber::Conn { ctl, .. } => shed(ctl),
                        Subscriber::Waiter { notify, .. } => notify.notify_one(),
                    }
                }
            }
        }
        tracing::info!(topics = entries.len(), "pub/sub subscribed");
    }

    /// Catches up every entry; returns those whose history could not be read.
    async fn catch_up_all(&self, bus: &Bus, entries: &[Arc<TopicEntry>]) -> Vec<Arc<TopicEntry>> {
        let mut failed = Vec::new();
        for chunk in entries.chunks(64) {
            let reads = chunk.iter().map(|e| self.catch_up(bus, e));
            let done = futures_util::future::join_all(reads).await;
            failed.extend(
                chunk
                    .iter()
                    .zip(done)
                    .filter(|(_, ok)| !ok)
                    .map(|(e, _)| e.clone()),
            );
        }
        failed
    }

    /// Delivers a topic's events after the last one dispatched; `false`
    /// when the history could not be read.
    async fn catch_up(&self, bus: &Bus, entry: &Arc<TopicEntry>) -> bool {
        let track = entry.track.lock().unwrap().clone();
        let last = track.dispatched.max(track.floor);
        let epoch = track.epoch;
        let limit = bus.settings().history_size as usize;
        let history = match bus
            .history(&entry.topic, Some(Since::Id(last)), epoch.as_deref(), limit)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, topic = %entry.topic, "catch-up read failed");
                return false;
            }
        };
        if history.epoch_changed {
            // The topic's history was lost with Redis: tell subscribers their
            // position no longer holds, then deliver the new life's events.
            *entry.track.lock().unwrap() = Track {
                dispatched: StreamId::ZERO,
                floor: StreamId::ZERO,
                epoch: Some(Arc::from(history.epoch.as_str())),
            };
            let notice = crate::ws::lost_history_notice(&entry.topic, &history);
            for sub in entry.subs.lock().unwrap().iter() {
                if let Subscriber::Conn { ctl, .. } = sub {
                    let msg = Outbound::Reset(Box::new((entry.topic.clone(), notice.clone())));
                    ctl.push_or_shed(msg);
                }
            }
        }
        let mut buf = String::new();
        for ev in &history.events {
            buf.clear();
            ev.write_frame(&mut buf, entry.topic.as_str());
            self.dispatch(entry.topic.as_str(), ev.id, &Utf8Bytes::from(buf.as_str()));
        }
        true
    }
}

/// `SSUBSCRIBE` (or `SUNSUBSCRIBE`) on Redis Cluster, which takes one command
/// only for channels of one slot: one command per slot, sent together.
async fn per_slot(
    subscriber: &Client,
    channels: Vec<String>,
    subscribe: bool,
) -> Result<(), fred::error::Error> {
    let mut by_slot: HashMap<u16, Vec<String>> = HashMap::new();
    for c in channels {
        let slot = fred::util::redis_keyslot(c.as_bytes());
        by_slot.entry(slot).or_default().push(c);
    }
    let sent = by_slot.into_values().map(|group| async move {
        if subscribe {
            subscriber.ssubscribe(group).await
        } else {
            subscriber.sunsubscribe(group).await
        }
    });
    futures_util::future::join_all(sent)
        .await
        .into_iter()
        .collect()
}
