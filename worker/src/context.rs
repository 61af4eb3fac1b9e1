//! What a handler gets: its job's payload and attempt, and the means to
//! report progress, logs and streamed output, and to notice cancellation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay_shared::jobs::attempt::Attempt;
use relay_shared::jobs::events::{self, types, JobEvents};
use relay_shared::jobs::model::Progress;
use relay_shared::jobs::Store;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::error::JobError;
use crate::runner::Core;
use crate::upload::UploadReader;

/// Levels of `job.log` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// The latest progress of a running job, written to PostgreSQL about once a second.
#[derive(Debug, Default)]
pub(crate) struct ProgressSlot {
    pub(crate) latest: Option<Value>,
    pub(crate) dirty: bool,
}

/// How long a chunk is retried while Redis is away before the attempt fails.
const CHUNK_RETRY_FOR: Duration = Duration::from_secs(10);

impl Inner {
    pub(crate) fn new(
        attempt: &Attempt,
        core: &Core,
        stop: CancellationToken,
        progress: Arc<Mutex<ProgressSlot>>,
    ) -> Self {
        Self {
            id: attempt.lease.id.clone(),
            kind: attempt.lease.kind.clone(),
            owner: attempt.owner.clone(),
            attempt: attempt.lease.attempt,
            max_attempts: attempt.max_attempts,
            worker: core.id.clone(),
            payload: attempt.payload.clone(),
            events: core.engine.events.clone(),
            store: core.engine.store.clone(),
            stop,
            progress,
            chunk_seq: AtomicU64::new(0),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) owner: String,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) worker: String,
    pub(crate) payload: Value,
    pub(crate) events: JobEvents,
    pub(crate) store: Store,
    pub(crate) stop: CancellationToken,
    pub(crate) progress: Arc<Mutex<ProgressSlot>>,
    pub(crate) chunk_seq: AtomicU64,
}

/// One attempt of one job, as its handler sees it. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.inner.id)
            .field("kind", &self.inner.kind)
            .field("attempt", &self.inner.attempt)
            .finish()
    }
}

impl JobContext {
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub fn kind(&self) -> &str {
        &self.inner.kind
    }

    /// The `sub` of the user who submitted the job.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// The id of the worker running this attempt.
    pub fn worker_id(&self) -> &str {
        &self.inner.worker
    }

    pub fn payload(&self) -> &Value {
        &self.inner.payload
    }

    /// The payload as `T`; a payload that does not fit is a fatal error.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.inner.payload.clone())
            .map_err(|e| JobError::fatal(format!("invalid payload: {e}")))
    }

    /// Opens an upload the payload names (`{"upload_id": "..."}`
    /// anywhere in it; the gateway checked at submit that it exists and
    /// belongs to the job's owner), to read it chunk by chunk.
    pub async fn upload(&self, upload_id: &str) -> Result<UploadReader, JobError> {
        UploadReader::open(self.inner.store.clone(), upload_id).await
    }

    /// The job store (for reading uploads).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Fires when the job must stop: cancelled, timed out, lease lost, or
    /// the worker is shutting down.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.inner.stop
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.stop.is_cancelled()
    }

    /// Completes when the job must stop (see [`JobContext::cancellation`]).
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.inner.stop.cancelled()
    }

    /// Publishes `job.progress` now; PostgreSQL gets the latest within about a second.
    /// Best effort: a progress event Redis could not take is logged, not fatal.
    pub async fn progress(&self, progress: Progress) {
        let data = serde_json::to_value(&progress).unwrap_or(Value::Null);
        if let Ok(mut slot) = self.inner.progress.lock() {
            slot.latest = Some(data.clone());
            slot.dirty = true;
        }
        if let Err(e) = self
            .inner
            .events
            .job(&self.inner.id, types::PROGRESS, data)
            .await
        {
            metrics::counter!("relay_job_events_dropped_total", "type" => types::PROGRESS)
                .increment(1);
            tracing::warn!(error = %e, "progress event not published");
        }
    }

    /// Publishes `job.log` (best effort, like progress).
    pub async fn log(&self, level: LogLevel, message: impl Into<String>) {
        let data = events::log_data(level.as_str(), message.into());
        if let Err(e) = self
            .inner
            .events
            .job(&self.inner.id, types::LOG, data)
            .await
        {
            metrics::counter!("relay_job_events_dropped_total", "type" => types::LOG).increment(1);
            tracing::warn!(error = %e, "log event not published");
        }
    }

    /// Publishes the next `job.chunk` (`seq` from 0 without gaps within an
    /// attempt). Retried while Redis is briefly away; an error means the
    /// stream has a gap and the attempt should fail (retryable).
    pub async fn chunk(&self, text: impl Into<String>) -> Result<(), JobError> {
        let seq = self.inner.chunk_seq.load(Ordering::Acquire);
        let data = events::chunk_data(seq, text.into());
        let deadline = tokio::time::Instant::now() + CHUNK_RETRY_FOR;
        let mut delay = Duration::from_millis(50);
        loop {
            match self
                .inner
                .events
                .job(&self.inner.id, types::CHUNK, data.clone())
                .await
            {
                Ok(_) => {
                    self.inner.chunk_seq.store(seq + 1, Ordering::Release);
                    return Ok(());
                }
                Err(e) if e.is_unavailable() && tokio::time::Instant::now() + delay < deadline => {
                    tokio::select! {
                        _ = self.inner.stop.cancelled() => return Err(JobError::Cancelled),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    return Err(JobError::retryable(format!(
                        "chunk {seq} not published: {e}"
                    )))
                }
            }
        }
    }
}
