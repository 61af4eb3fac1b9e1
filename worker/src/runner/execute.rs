//! One attempt of one job, from lease to acknowledgement.
//!
//! Order of writes: PostgreSQL first (fenced by the lease token), then the
//! event (only if the write changed a row) together with the queue's ack.
//! The start and terminal writes of concurrent attempts share statements
//! (the store batches them); each attempt still learns whether its own row
//! changed. A crash between
//! any two steps leaves the job leased in Redis; its lease lapses, another
//! worker takes it, and PostgreSQL's state decides what happens next.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use relay_shared::jobs::backoff::retry_delay;
use relay_shared::jobs::events::{Ending, JobRef};
use relay_shared::jobs::outbox;
use relay_shared::jobs::queue::Leased;
use relay_shared::jobs::store::{Ended, Started, Terminal};
use relay_shared::jobs::StoreError;
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Core, RunningJob, StopReason, TROUBLE_PAUSE};
use crate::context::{Inner, JobContext, ProgressSlot};
use crate::error::{JobError, JobResult};
use crate::metrics;

/// How long a handler told to stop may take before it is dropped.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a terminal write is retried while PostgreSQL is away; after
/// that the lease is let go and the job runs again elsewhere.
const WRITE_RETRY_FOR: Duration = Duration::from_secs(60);

/// What an attempt came to.
enum Outcome {
    End(Terminal),
    Retry(String),
    Release,
    Lost,
}

pub(crate) async fn run(core: Arc<Core>, job: Leased, permit: OwnedSemaphorePermit) {
    let span =
        tracing::info_span!("job", job_id = %job.id, kind = %job.kind, attempt = job.attempt);
    attempt(core, job).instrument(span).await;
    drop(permit);
}

async fn attempt(core: Arc<Core>, job: Leased) {
    if job.exhausted {
        let error = format!(
            "lease expired on all {} attempts (the worker running it stopped)",
            job.max_attempts
        );
        return end_unfenced(&core, &job, Terminal::Failed { error }).await;
    }
    if job.cancel {
        return end_unfenced(
            &core,
            &job,
            Terminal::Cancelled {
                reason: "cancelled by request".into(),
            },
        )
        .await;
    }
    let started = match core
        .store
        .start_attempt(&job.id, &job.token, job.attempt, &core.id)
        .await
    {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::debug!("job already ended; dropping it from the queue");
            let _ = core.queue.ack(&job.kind, &job.id, Some(&job.token)).await;
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the job; giving it back");
            core.pause_pulls(TROUBLE_PAUSE);
            let _ = core.queue.release(&job.kind, &job.id, &job.token).await;
            return;
        }
    };
    if started.cancel_requested {
        let end = Terminal::Cancelled {
            reason: "cancelled by request".into(),
        };
        return end_fenced(&core, &job, &started, end, None, Instant::now()).await;
    }
    let Some(handler) = core.registry.get(&job.kind) else {
        let end = Terminal::Failed {
            error: format!("no handler for kind {}", job.kind),
        };
        return end_fenced(&core, &job, &started, end, None, Instant::now()).await;
    };
    metrics::started(&job.kind, job.attempt, started.created_at);
    if let Err(e) = core
        .events
        .started(
            JobRef::new(&job.id, &job.kind, &started.owner),
            job.attempt,
            &core.id,
        )
        .await
    {
        tracing::warn!(error = %e, "job.started not published");
    }

    let stop = CancellationToken::new();
    let reason = Arc::new(OnceLock::new());
    let progress = Arc::new(Mutex::new(ProgressSlot::default()));
    let entry = RunningJob {
        kind: job.kind.clone(),
        token: job.token.clone(),
        stop: stop.clone(),
        reason: reason.clone(),
        progress: progress.clone(),
    };
    if let Ok(mut running) = core.running.lock() {
        running.insert(job.id.clone(), entry);
    }
    if core.draining.is_cancelled() {
        let _ = reason.set(StopReason::Shutdown);
        stop.cancel();
    }
    let ctx = JobContext {
        inner: Arc::new(Inner {
            id: job.id.clone(),
            kind: job.kind.clone(),
            owner: started.owner.clone(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            worker: core.id.clone(),
            payload: started.payload.clone(),
            events: core.events.clone(),
            store: core.store.clone(),
            stop: stop.clone(),
            progress: progress.clone(),
            chunk_seq: AtomicU64::new(0),
        }),
    };

    let t0 = Instant::now();
    let result = run_handler(
        handler.call(ctx),
        &stop,
        &reason,
        Duration::from_millis(job.timeout_ms),
    )
    .await;
    let outcome = decide(&job, reason.get().cloned(), result);
    let latest = progress.lock().ok().and_then(|p| p.latest.clone());

    match outcome {
        Outcome::Lost => {
            tracing::warn!("lease lost; another worker owns the job now");
            metrics::lost(&job.kind);
        }
        Outcome::Release => release(&core, &job).await,
        Outcome::Retry(error) => retry(&core, &job, &error).await,
        Outcome::End(end) => end_fenced(&core, &job, &started, end, latest.as_ref(), t0).await,
    }
    if let Ok(mut running) = core.running.lock() {
        running.remove(&job.id);
    }
}

/// Runs the handler until it returns, times out, or is told to stop; a
/// handler that does not return within [`STOP_GRACE`] of being stopped is dropped.
async fn run_handler(
    fut: crate::handler::BoxJob<'_>,
    stop: &CancellationToken,
    reason: &OnceLock<StopReason>,
    timeout: Duration,
) -> Option<JobResult> {
    let mut fut = fut;
    tokio::select! {
        r = &mut fut => return Some(r),
        _ = tokio::time::sleep(timeout) => {
            let _ = reason.set(StopReason::Timeout);
            stop.cancel();
        }
        _ = stop.cancelled() => {}
    }
    match tokio::time::timeout(STOP_GRACE, &mut fut).await {
        Ok(r) => Some(r),
        Err(_) => {
            tracing::warn!("handler ignored the stop for {STOP_GRACE:?}; dropped");
            None
        }
    }
}

fn decide(job: &Leased, reason: Option<StopReason>, result: Option<JobResult>) -> Outcome {
    let can_retry = job.attempt < job.max_attempts;
    match (reason, result) {
        (Some(StopReason::Lost), _) => Outcome::Lost,
        (Some(StopReason::Shutdown), Some(Ok(result))) => {
            Outcome::End(Terminal::Completed { result })
        }
        (Some(StopReason::Shutdown), _) => Outcome::Release,
        (Some(StopReason::Cancelled(reason)), _) => Outcome::End(Terminal::Cancelled { reason }),
        (Some(StopReason::Timeout), _) => {
            let error = format!("timed out after {} ms", job.timeout_ms);
            if can_retry {
                Outcome::Retry(error)
            } else {
                Outcome::End(Terminal::Failed { error })
            }
        }
        (None, Some(Ok(result))) => Outcome::End(Terminal::Completed { result }),
        (None, Some(Err(JobError::Retryable(error)))) if can_retry => Outcome::Retry(error),
        (None, Some(Err(JobError::Retryable(error) | JobError::Fatal(error)))) => {
            Outcome::End(Terminal::Failed { error })
        }
        (None, Some(Err(JobError::Cancelled))) => Outcome::End(Terminal::Cancelled {
            reason: "cancelled by the handler".into(),
        }),
        (None, None) => Outcome::End(Terminal::Failed {
            error: "handler stopped without a result".into(),
        }),
    }
}

/// Retries a PostgreSQL write while PostgreSQL is unavailable, up to [`WRITE_RETRY_FOR`].
async fn with_retry<T, F, Fut>(what: &str, mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + WRITE_RETRY_FOR;
    let mut delay = Duration::from_millis(100);
    loop {
        match f().await {
            Err(e) if e.is_unavailable() && Instant::now() + delay < deadline => {
                tracing::warn!(error = %e, "{what}: postgresql unavailable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Ends the job under this attempt's lease token, publishes the terminal
/// event if this call ended it, then removes it from the queue.
async fn end_fenced(
    core: &Core,
    job: &Leased,
    started: &Started,
    end: Terminal,
    progress: Option<&Value>,
    t0: Instant,
) {
    let written = with_retry("finish", || {
        core.store
            .end_attempt(&job.id, Some(&job.token), &end, progress)
    })
    .await;
    let ack = async {
        if let Err(e) = core.queue.ack(&job.kind, &job.id, Some(&job.token)).await {
            tracing::warn!(error = %e, "ack failed; the reclaim sweep will clear the job");
        }
    };
    match written {
        Ok(Some(ended)) => {
            metrics::ended(&job.kind, &end, t0.elapsed());
            // The record holds the state now; the event and the ack may go together.
            tokio::join!(
                publish_end(
                    core,
                    JobRef::new(&job.id, &job.kind, &started.owner),
                    &end,
                    &ended
                ),
                ack
            );
        }
        Ok(None) => {
            tracing::info!("job ended elsewhere (or lease lost); nothing written");
            ack.await;
        }
        Err(e) => {
            tracing::error!(error = %e, "terminal state not written; the lease will lapse and the job run again");
        }
    }
}

/// Ends a job this worker holds the Redis lease of but never started
/// (cancelled before it ran, or out of attempts).
async fn end_unfenced(core: &Core, job: &Leased, end: Terminal) {
    let written = with_retry("finish", || {
        core.store.end_attempt(&job.id, None, &end, None)
    })
    .await;
    match written {
        Ok(Some(ended)) => {
            metrics::ended(&job.kind, &end, Duration::ZERO);
            publish_end(
                core,
                JobRef::new(&job.id, &job.kind, &ended.owner),
                &end,
                &ended,
            )
            .await;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "terminal state not written; will be tried again");
            return;
        }
    }
    let _ = core.queue.ack(&job.kind, &job.id, Some(&job.token)).await;
}

/// Announces an end this attempt recorded (see [`outbox::announce`]).
async fn publish_end(core: &Core, job: JobRef<'_>, end: &Terminal, ended: &Ended) {
    // The record's error is the one written: for a cancel, the reason its
    // request gave, if any.
    let error = ended.error.as_deref();
    let ending = match end {
        Terminal::Completed { result } => Ending::Completed { result },
        Terminal::Failed { error: e } => Ending::Failed {
            error: error.unwrap_or(e),
            attempts: ended.attempts,
        },
        Terminal::Cancelled { reason } => Ending::Cancelled {
            reason: error.unwrap_or(reason),
        },
    };
    outbox::announce(&core.store, &core.events, job, &ending).await;
}

async fn retry(core: &Core, job: &Leased, error: &str) {
    let delay = retry_delay(job.attempt);
    match with_retry("retry", || {
        core.store.retry_later(&job.id, &job.token, error)
    })
    .await
    {
        Ok(true) => {}
        Ok(false) => {
            let _ = core.queue.ack(&job.kind, &job.id, Some(&job.token)).await;
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "retry not recorded; the lease will lapse and the job run again");
            return;
        }
    }
    metrics::retried(&job.kind);
    tracing::info!(
        error,
        retry_in_ms = delay.as_millis() as u64,
        "attempt failed; retrying later"
    );
    if let Err(e) = core
        .queue
        .retry(&job.kind, &job.id, &job.token, delay.as_millis() as u64)
        .await
    {
        tracing::warn!(error = %e, "retry not queued; the lease will lapse and the job run again");
    }
    if let Err(e) = core
        .events
        .retrying(&job.id, job.attempt, error, delay.as_millis() as u64)
        .await
    {
        tracing::warn!(error = %e, "job.retrying not published");
    }
}

async fn release(core: &Core, job: &Leased) {
    tracing::info!("worker shutting down; giving the job back");
    match core.store.release(&job.id, &job.token).await {
        Ok(true) => {
            let _ = core.queue.release(&job.kind, &job.id, &job.token).await;
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "release not recorded; the lease will lapse and the job run again")
        }
    }
}
