//! One attempt of one job on this worker: started by the shared attempt
//! engine, run by its handler under a timeout and a stop token, and ended
//! by the engine again (see `relay_shared::jobs::attempt` for the rules).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use relay_shared::jobs::attempt::{Outcome, Start};
use relay_shared::jobs::queue::Leased;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Core, RunningJob, StopReason, TROUBLE_PAUSE};
use crate::context::{Inner, JobContext, ProgressSlot};
use crate::error::{JobError, JobResult};

use relay_shared::jobs::attempt::STOP_GRACE;

pub(crate) async fn run(core: Arc<Core>, job: Leased, permit: OwnedSemaphorePermit) {
    let span =
        tracing::info_span!("job", job_id = %job.id, kind = %job.kind, attempt = job.attempt);
    attempt(core, job).instrument(span).await;
    drop(permit);
}

async fn attempt(core: Arc<Core>, job: Leased) {
    let attempt = match core.engine.start(job, &core.id).await {
        Start::Run(a) => a,
        Start::Done => return,
        Start::Trouble => {
            core.pause_pulls(TROUBLE_PAUSE);
            return;
        }
    };
    let Some(handler) = core.registry.get(&attempt.lease.kind) else {
        let error = format!("no handler for kind {}", attempt.lease.kind);
        let outcome = Outcome::Failed {
            error,
            retryable: false,
        };
        core.engine
            .finish(&attempt, outcome, None, Duration::ZERO)
            .await;
        return;
    };

    let id = attempt.lease.id.clone();
    let stop = CancellationToken::new();
    let reason = Arc::new(OnceLock::new());
    let progress = Arc::new(Mutex::new(ProgressSlot::default()));
    let entry = RunningJob {
        kind: attempt.lease.kind.clone(),
        token: attempt.lease.token.clone(),
        stop: stop.clone(),
        reason: reason.clone(),
        progress: progress.clone(),
    };
    if let Ok(mut running) = core.running.lock() {
        running.insert(id.clone(), entry);
    }
    if core.draining.is_cancelled() {
        let _ = reason.set(StopReason::Shutdown);
        stop.cancel();
    }
    let ctx = JobContext {
        inner: Arc::new(Inner::new(&attempt, &core, stop.clone(), progress.clone())),
    };

    let t0 = Instant::now();
    let result = run_handler(handler.call(ctx), &stop, &reason, attempt.timeout()).await;
    let latest = progress.lock().ok().and_then(|p| p.latest.clone());
    match decide(reason.get().cloned(), result) {
        None => core.engine.lost(&attempt.lease),
        Some(outcome) => {
            core.engine
                .finish(&attempt, outcome, latest.as_ref(), t0.elapsed())
                .await;
        }
    }
    if let Ok(mut running) = core.running.lock() {
        running.remove(&id);
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

/// What the attempt came to, from why it was stopped (if it was) and what
/// its handler returned; `None` when the lease was lost (write nothing).
fn decide(reason: Option<StopReason>, result: Option<JobResult>) -> Option<Outcome> {
    Some(match (reason, result) {
        (Some(StopReason::Lost), _) => return None,
        (Some(StopReason::Shutdown), Some(Ok(result))) => Outcome::Completed(result),
        (Some(StopReason::Shutdown), _) => Outcome::Release,
        (Some(StopReason::Cancelled(reason)), _) => Outcome::Cancelled(reason),
        (Some(StopReason::Timeout), _) => Outcome::TimedOut,
        (None, Some(Ok(result))) => Outcome::Completed(result),
        (None, Some(Err(JobError::Retryable(error)))) => Outcome::Failed {
            error,
            retryable: true,
        },
        (None, Some(Err(JobError::Fatal(error)))) => Outcome::Failed {
            error,
            retryable: false,
        },
        (None, Some(Err(JobError::Cancelled))) => {
            Outcome::Cancelled("cancelled by the handler".into())
        }
        (None, None) => Outcome::Failed {
            error: "handler stopped without a result".into(),
            retryable: false,
        },
    })
}
