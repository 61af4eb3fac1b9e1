//! The gateway's one Redis subscriber: it alone issues `SUBSCRIBE` and
//! `UNSUBSCRIBE` (in order, batched), reads live events and hands them to
//! the dispatcher, and after a reconnect resubscribes every channel and
//! catches each topic up.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use fred::prelude::*;
use relay_shared::bus::Bus;
use relay_shared::event::{frame_id, StreamId};
use relay_shared::keys;
use relay_shared::topic::Topic;
use tokio_util::sync::CancellationToken;

use super::{Cmd, Hub, Subscriber, TopicEntry, Track};
use crate::metrics as m;
use crate::replay::catch_up::catch_up;
use crate::ws::queue::Outbound;

/// Channels subscribed or unsubscribed in one Redis command at most.
const SUBSCRIBE_BATCH: usize = 1000;

/// How long a catch-up after a reconnect waits for the command connection
/// before the topics it could not read are resumed by their clients.
const CATCH_UP_WAIT: Duration = Duration::from_secs(3);

/// How often empty topics are released and pending subscriptions retried.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

impl Hub {
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
                    Subscriber::Conn { queue, .. } => queue.shed(),
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
                        Subscriber::Conn { queue, .. } => queue.shed(),
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
        let after = track.dispatched.max(track.floor);
        let read = catch_up(bus, &entry.topic, after, track.epoch.as_deref()).await;
        let caught = match read {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, topic = %entry.topic, "catch-up read failed");
                return false;
            }
        };
        if let Some(notice) = caught.lost {
            // The topic's history was lost with Redis: tell subscribers their
            // position no longer holds, then deliver the new life's events.
            *entry.track.lock().unwrap() = Track {
                dispatched: StreamId::ZERO,
                floor: StreamId::ZERO,
                epoch: Some(Arc::from(caught.epoch.as_str())),
            };
            for sub in entry.subs.lock().unwrap().iter() {
                if let Subscriber::Conn { queue, .. } = sub {
                    let msg = Outbound::Reset(Box::new((entry.topic.clone(), notice.clone())));
                    queue.push_or_shed(msg);
                }
            }
        }
        for (id, frame) in caught.frames.iter() {
            self.dispatch(entry.topic.as_str(), *id, frame);
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
