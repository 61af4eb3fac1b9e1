//! History reads for WebSocket subscribes, shared and bounded.
//!
//! When many clients resume one topic at once (a gateway restart, a network
//! blip, a load balancer moving everyone), they ask for the same history
//! after the same position. Each such group shares one Redis read and one set
//! of formatted frames, and at most [`MAX_READS`] reads run at a time, so a
//! stampede queues instead of timing out.
//!
//! A subscriber may join a read only while it waits for its turn: the read's
//! snapshot must be taken after every joined subscriber registered with the
//! hub, or events published in between would reach neither the replay nor
//! the subscriber (the replay race). So a read leaves the table of joinable
//! reads the moment it starts; later subscribers queue a new one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use relay_shared::bus::{Bus, BusError, HistoryInfo};
use relay_shared::event::{Since, StreamId};
use relay_shared::topic::Topic;
use tokio::sync::Semaphore;

use super::frames::{frames_of, Frames};

/// History reads running at once per gateway, at most.
pub const MAX_READS: usize = 16;

/// A topic's history after a position, with its event frames formatted once.
#[derive(Debug)]
pub struct Loaded {
    pub info: HistoryInfo,
    /// `(id, frame)` of each replayed event, oldest first.
    pub frames: Frames,
}

/// Why a read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Redis could not be reached.
    Unavailable,
    /// Anything else (a timeout under load, a bad reply).
    Failed,
}

type ReadFuture = Shared<BoxFuture<'static, Result<Arc<Loaded>, ReadError>>>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    topic: Topic,
    first: Option<StreamId>,
    epoch: Option<Box<str>>,
}

/// Shared, bounded history reads; cheap to clone.
#[derive(Clone)]
pub struct ReplayReads {
    inner: Arc<Inner>,
}

struct Inner {
    bus: Bus,
    /// Reads waiting for their turn, which a subscriber may still join.
    waiting: Mutex<HashMap<Key, (u64, ReadFuture)>>,
    permits: Semaphore,
    next: AtomicU64,
}

impl ReplayReads {
    pub fn new(bus: Bus) -> Self {
        Self {
            inner: Arc::new(Inner {
                bus,
                waiting: Mutex::new(HashMap::new()),
                permits: Semaphore::new(MAX_READS),
                next: AtomicU64::new(0),
            }),
        }
    }

    /// The history of `topic` after `since` (its position and epoch only
    /// when `since` is `None`), at most the bus's history size. Call it
    /// after the subscriber is registered with the hub and the channel is
    /// live.
    pub async fn read(
        &self,
        topic: &Topic,
        since: Option<Since>,
        epoch: Option<&str>,
    ) -> Result<Arc<Loaded>, ReadError> {
        let key = Key {
            topic: topic.clone(),
            first: since.map(Since::first_wanted),
            epoch: epoch.map(Box::from),
        };
        let read = {
            let mut waiting = self.inner.waiting.lock().unwrap();
            match waiting.get(&key) {
                Some((_, read)) => {
                    crate::metrics::history_read(true);
                    read.clone()
                }
                None => {
                    crate::metrics::history_read(false);
                    let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
                    let read = self.start(key.clone(), n, since);
                    waiting.insert(key, (n, read.clone()));
                    read
                }
            }
        };
        read.await
    }

    /// Spawns a read (so it completes and leaves the table even if every
    /// subscriber waiting for it goes away) and returns its shared result.
    fn start(&self, key: Key, n: u64, since: Option<Since>) -> ReadFuture {
        let this = self.clone();
        let task = tokio::spawn(async move {
            let _permit = this.inner.permits.acquire().await;
            {
                let mut waiting = this.inner.waiting.lock().unwrap();
                if waiting.get(&key).is_some_and(|(m, _)| *m == n) {
                    waiting.remove(&key);
                }
            }
            this.load(&key, since).await
        });
        async move { task.await.unwrap_or(Err(ReadError::Failed)) }
            .boxed()
            .shared()
    }

    async fn load(&self, key: &Key, since: Option<Since>) -> Result<Arc<Loaded>, ReadError> {
        let bus = &self.inner.bus;
        let limit = bus.settings().history_size as usize;
        let history = bus
            .history(&key.topic, since, key.epoch.as_deref(), limit)
            .await
            .map_err(|e| match e {
                BusError::Unavailable(_) => ReadError::Unavailable,
                e => {
                    tracing::warn!(error = %e, "history read failed");
                    ReadError::Failed
                }
            })?;
        Ok(Arc::new(Loaded {
            frames: frames_of(&key.topic, &history.events),
            info: history.info,
        }))
    }
}
