//! A connection's bounded send queue, and what a WebSocket's writer
//! receives through it.
//!
//! [`SendQueue`] is the per-connection half of backpressure: the hub and the
//! reader push without waiting, the connection's one writer pops; a client
//! that lets its queue fill is closed ([`SendQueue::shed`], 4008) and
//! resumes with `since`, so it never makes the gateway grow and never slows
//! anyone else. The queue knows nothing of WebSockets: it carries any item
//! type, with a close signal (and why) and when the client was last heard
//! from, so another kind of long-lived connection can use it as it is.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use relay_shared::event::StreamId;
use relay_shared::protocol::CloseReason;
use relay_shared::topic::Topic;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::metrics as m;

/// A WebSocket connection's queue.
pub type WsQueue = SendQueue<Outbound>;

/// What a WebSocket's writer receives. Kept to three words, so a queue's
/// memory stays small.
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

/// A connection's bounded send queue, its close signal (and why), and when
/// the client was last heard from.
///
/// The queue is a bounded deque behind a lock held only to push or pop one
/// item, with the writer's waker beside it: no memory until something is
/// queued (a channel would allocate a block of slots and a padded header per
/// connection, about 1.3 KB), and it gives its memory back after a burst.
#[derive(Debug)]
pub struct SendQueue<T> {
    queue: Mutex<VecDeque<T>>,
    capacity: usize,
    writer: AtomicWaker,
    close: CancellationToken,
    /// Why it closes ([`CloseReason::to_u8`]; 0 while open).
    reason: AtomicU8,
    /// When the client last sent anything, in the registry's clock
    /// ([`super::conns::Conns::now_ms`]).
    last_seen: AtomicU64,
}

/// Deque capacity a drained queue keeps; more is given back.
const KEEP_CAPACITY: usize = 16;

impl<T> SendQueue<T> {
    /// A queue of at most `capacity` items.
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

    /// Queues `item` for the writer; `false` (and `item` dropped) when the
    /// queue is full.
    pub fn push(&self, item: T) -> bool {
        {
            let mut queue = self.queue.lock().unwrap();
            if queue.len() >= self.capacity {
                return false;
            }
            queue.push_back(item);
        }
        self.writer.wake();
        true
    }

    /// Queues `item`, or sheds the connection when its queue is full: a
    /// client that lets its queue fill is too slow to keep.
    pub fn push_or_shed(&self, item: T) {
        if !self.push(item) {
            self.shed();
        }
    }

    /// Closes a client that fell behind with 4008, counting it once.
    pub fn shed(&self) {
        if self.close(CloseReason::TooSlow) {
            metrics::counter!(m::SLOW_CLOSES).increment(1);
        }
    }

    /// The next queued item, if any.
    pub fn try_pop(&self) -> Option<T> {
        let mut queue = self.queue.lock().unwrap();
        let item = queue.pop_front();
        if queue.is_empty() && queue.capacity() > KEEP_CAPACITY {
            queue.shrink_to(KEEP_CAPACITY);
        }
        item
    }

    /// Waits for the next queued item (for the connection's one writer).
    pub async fn pop(&self) -> T {
        std::future::poll_fn(|cx| {
            if let Some(item) = self.try_pop() {
                return std::task::Poll::Ready(item);
            }
            self.writer.register(cx.waker());
            // Again: a push between the first look and the registration
            // woke no one.
            match self.try_pop() {
                Some(item) => std::task::Poll::Ready(item),
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

    /// Completes when the connection is asked to close.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.close.cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_sheds_its_client_once_with_4008() {
        let q = SendQueue::<u32>::new(2);
        assert!(q.push(1) && q.push(2));
        assert!(!q.push(3), "a third item does not fit");
        assert_eq!(q.reason(), None);
        q.push_or_shed(4);
        assert_eq!(q.reason(), Some(CloseReason::TooSlow));
        assert_eq!(q.reason().map(CloseReason::code), Some(4008));
        // The first reason wins.
        assert!(!q.close(CloseReason::Draining));
        assert_eq!(q.reason(), Some(CloseReason::TooSlow));
        assert_eq!(
            (q.try_pop(), q.try_pop(), q.try_pop()),
            (Some(1), Some(2), None)
        );
    }

    #[tokio::test]
    async fn the_writer_wakes_for_an_item_pushed_while_it_waits() {
        let q = Arc::new(SendQueue::<u32>::new(4));
        let writer = tokio::spawn({
            let q = q.clone();
            async move { q.pop().await }
        });
        tokio::task::yield_now().await;
        assert!(q.push(7));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), writer)
            .await
            .expect("the writer woke")
            .unwrap();
        assert_eq!(got, 7);
    }
}
