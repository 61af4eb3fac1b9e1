//! Group commit: many concurrent callers' rows in one statement.
//!
//! A [`Batcher`] owns a bounded queue and one task. A caller puts its
//! request in the queue and waits on a oneshot for its own answer. The task
//! takes the first waiting request, everything else already queued (up to
//! `max_rows`), waits at most `linger` for more, and hands the batch to a
//! flush function that writes it in one statement and answers each request.
//! At most `in_flight` batches run at once; while they all run, requests
//! gather in the queue and the next batch takes them together, so batches
//! grow with load and a lone request waits only `linger`.
//!
//! Bounds: the queue holds at most `queue` requests (a caller finding it
//! full waits up to [`CONNECT_TIMEOUT`] and then gets `Unavailable`), a
//! batch at most `max_rows`, and at most `in_flight` batches are written at
//! once. A request holds only what its caller already held.
//!
//! Errors: PostgreSQL being away fails every request of the batch with
//! `Unavailable` (fast: the pool's own timeouts bound it); the flush
//! function decides what a refused statement means (the ones here retry
//! the rows one by one, so one bad row fails only its own caller).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{Core, StoreError, CONNECT_TIMEOUT};

/// The future a flush function returns: one answer per request, in order.
pub(crate) type Flushed<R> = Pin<Box<dyn Future<Output = Vec<Result<R, StoreError>>> + Send>>;

/// Writes one batch.
pub(crate) type FlushFn<Q, R> = fn(Arc<Core>, Vec<Q>) -> Flushed<R>;

/// The bounds and the window of one batcher.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchSettings {
    /// For logs.
    pub(crate) name: &'static str,
    /// Most requests waiting in the queue.
    pub(crate) queue: usize,
    /// Most requests in one statement.
    pub(crate) max_rows: usize,
    /// Longest a batch waits for more requests after its first one.
    pub(crate) linger: Duration,
    /// Most batches being written at once.
    pub(crate) in_flight: usize,
}

type Item<Q, R> = (Q, oneshot::Sender<Result<R, StoreError>>);

/// One kind of batched write; see the module docs.
pub(crate) struct Batcher<Q, R> {
    settings: BatchSettings,
    flush: FlushFn<Q, R>,
    core: Arc<Core>,
    /// Started on first use (inside the runtime); the task ends when this
    /// sender is dropped with the last handle to the store.
    tx: OnceLock<mpsc::Sender<Item<Q, R>>>,
}

impl<Q: Send + 'static, R: Send + 'static> Batcher<Q, R> {
    pub(crate) fn new(core: Arc<Core>, settings: BatchSettings, flush: FlushFn<Q, R>) -> Self {
        Self {
            settings,
            flush,
            core,
            tx: OnceLock::new(),
        }
    }

    fn sender(&self) -> &mpsc::Sender<Item<Q, R>> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(self.settings.queue.max(1));
            tokio::spawn(run(self.core.clone(), rx, self.settings, self.flush));
            tx
        })
    }

    /// Queues `req` for the next batch and waits for its answer.
    pub(crate) async fn call(&self, req: Q) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        let name = self.settings.name;
        match tokio::time::timeout(CONNECT_TIMEOUT, self.sender().send((req, tx))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(StoreError::Unavailable(format!("{name}: batcher stopped"))),
            Err(_) => return Err(StoreError::Unavailable(format!("{name}: batch queue full"))),
        }
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable(format!("{name}: batch dropped"))))
    }

    /// Queues `req` without waiting for room or for the answer; `false`
    /// when the queue is full (the request is dropped).
    pub(crate) fn offer(&self, req: Q) -> bool {
        let (tx, _rx) = oneshot::channel();
        self.sender().try_send((req, tx)).is_ok()
    }
}

async fn run<Q: Send + 'static, R: Send + 'static>(
    core: Arc<Core>,
    mut rx: mpsc::Receiver<Item<Q, R>>,
    s: BatchSettings,
    flush: FlushFn<Q, R>,
) {
    let slots = Arc::new(Semaphore::new(s.in_flight.max(1)));
    let max = s.max_rows.max(1);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut batch = Vec::with_capacity(max.min(64));
        batch.push(first);
        let deadline = tokio::time::Instant::now() + s.linger;
        while batch.len() < max {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) if s.linger.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(item)) => batch.push(item),
                    _ => break,
                },
            }
        }
        let core = core.clone();
        tokio::spawn(async move {
            let (reqs, answers): (Vec<Q>, Vec<_>) = batch.into_iter().unzip();
            let n = reqs.len();
            let mut results = flush(core, reqs).await.into_iter();
            for answer in answers {
                let r = results.next().unwrap_or_else(|| {
                    Err(StoreError::Db(format!("{}: no answer for a row", s.name)))
                });
                let _ = answer.send(r);
            }
            tracing::trace!(batch = s.name, rows = n, "batch written");
            drop(slot);
        });
    }
}

/// The same error for every row of a failed batch.
pub(crate) fn fail_all<R>(n: usize, e: &StoreError) -> Vec<Result<R, StoreError>> {
    (0..n)
        .map(|_| {
            Err(match e {
                StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
                StoreError::Db(m) => StoreError::Db(m.clone()),
                StoreError::Migration(m) => StoreError::Migration(m.clone()),
                StoreError::Config(m) => StoreError::Config(m.clone()),
            })
        })
        .collect()
}
