//! Ending an attempt: the terminal write (fenced by the lease token, its
//! outbox row in the same statement), the terminal event and the queue's
//! ack; or a retry with backoff; or giving the job back.
//!
//! Order of writes: PostgreSQL first, then the event (only if the write
//! changed a row) together with the queue's ack. A crash between any two
//! steps leaves the job leased in Redis; its lease lapses, another worker
//! takes it, and PostgreSQL's state decides what happens next (and the
//! outbox announces an end that was recorded but not announced).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{metrics, Attempt, Engine, Lease};
use crate::jobs::backoff::retry_delay;
use crate::jobs::events::{Ending, JobRef};
use crate::jobs::model::JobState;
use crate::jobs::outbox;
use crate::jobs::store::{Ended, StoreError, Terminal};

/// What an attempt came to, as its runner tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The work is done: the job ends `completed` with this result.
    Completed(Value),
    /// The work failed: retried with backoff while attempts remain and the
    /// error is `retryable`, else the job ends `failed`.
    Failed { error: String, retryable: bool },
    /// The runner stopped because of a cancel: the job ends `cancelled`,
    /// with the reason the cancel request gave (else this one).
    Cancelled(String),
    /// The attempt ran past its `timeout_ms`: retried while attempts
    /// remain, else the job ends `failed`.
    TimedOut,
    /// Give the job back without counting the attempt (shutdown).
    Release,
}

/// What [`Engine::finish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// This attempt ended the job in this state.
    Ended(JobState),
    /// The job will run again after this long.
    Retrying { retry_in_ms: u64 },
    /// The job was given back (the attempt not counted).
    Released,
    /// The job had ended elsewhere, or this lease no longer held it: nothing written.
    NotOwner,
    /// PostgreSQL did not take the write in time; the lease will lapse and
    /// the job run again.
    NotWritten,
}

impl Engine {
    /// Ends `attempt` as `outcome` tells, fenced by its lease token.
    /// `progress` is its latest progress (kept in the record), `ran` how
    /// long it ran (for the run-time histogram).
    pub async fn finish(
        &self,
        attempt: &Attempt,
        outcome: Outcome,
        progress: Option<&Value>,
        ran: Duration,
    ) -> Finished {
        self.finish_lease(
            &attempt.lease,
            attempt.max_attempts,
            attempt.timeout_ms,
            outcome,
            progress,
            ran,
        )
        .await
    }

    pub(super) async fn finish_lease(
        &self,
        lease: &Lease,
        max_attempts: u32,
        timeout_ms: u64,
        outcome: Outcome,
        progress: Option<&Value>,
        ran: Duration,
    ) -> Finished {
        let can_retry = lease.attempt < max_attempts;
        let end = match outcome {
            Outcome::Completed(result) => Terminal::Completed { result },
            Outcome::Failed {
                error,
                retryable: true,
            } if can_retry => return self.retry(lease, &error).await,
            Outcome::Failed { error, .. } => Terminal::Failed { error },
            Outcome::Cancelled(reason) => Terminal::Cancelled { reason },
            Outcome::TimedOut => {
                let error = format!("timed out after {timeout_ms} ms");
                if can_retry {
                    return self.retry(lease, &error).await;
                }
                Terminal::Failed { error }
            }
            Outcome::Release => return self.release(lease).await,
        };
        self.end_fenced(lease, end, progress, ran).await
    }

    /// Counts an attempt that lost its lease (its runner writes nothing).
    pub fn lost(&self, lease: &Lease) {
        tracing::warn!("lease lost; another worker owns the job now");
        metrics::lost(&lease.kind);
    }

    /// Retries a PostgreSQL write while PostgreSQL is unavailable, up to
    /// the engine's `write_retry_for`.
    async fn with_retry<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let deadline = Instant::now() + self.settings.write_retry_for;
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

    /// Ends the job under this lease's token, announces the end if this
    /// call made it, and removes the job from the queue.
    async fn end_fenced(
        &self,
        lease: &Lease,
        end: Terminal,
        progress: Option<&Value>,
        ran: Duration,
    ) -> Finished {
        let written = self
            .with_retry("finish", || {
                self.store
                    .end_attempt(&lease.id, Some(&lease.token), &end, progress)
            })
            .await;
        let ack = async {
            if let Err(e) = self
                .queue
                .ack(&lease.kind, &lease.id, Some(&lease.token))
                .await
            {
                tracing::warn!(error = %e, "ack failed; the reclaim sweep will clear the job");
            }
        };
        match written {
            Ok(Some(ended)) => {
                metrics::ended(&lease.kind, &end, ran);
                // The record holds the state now; the event and the ack may go together.
                let job = JobRef::new(&lease.id, &lease.kind, &ended.owner);
                tokio::join!(self.announce(job, &end, &ended), ack);
                Finished::Ended(end.state())
            }
            Ok(None) => {
                tracing::info!("job ended elsewhere (or lease lost); nothing written");
                ack.await;
                Finished::NotOwner
            }
            Err(e) => {
                tracing::error!(error = %e, "terminal state not written; the lease will lapse and the job run again");
                Finished::NotWritten
            }
        }
    }

    /// Ends a job whose Redis lease is held but which never started
    /// (cancelled before it ran, or out of attempts).
    pub(super) async fn end_unfenced(&self, lease: &Lease, end: Terminal) -> Finished {
        let written = self
            .with_retry("finish", || {
                self.store.end_attempt(&lease.id, None, &end, None)
            })
            .await;
        let done = match written {
            Ok(Some(ended)) => {
                metrics::ended(&lease.kind, &end, Duration::ZERO);
                let job = JobRef::new(&lease.id, &lease.kind, &ended.owner);
                self.announce(job, &end, &ended).await;
                Finished::Ended(end.state())
            }
            Ok(None) => Finished::NotOwner,
            Err(e) => {
                tracing::error!(error = %e, "terminal state not written; will be tried again");
                return Finished::NotWritten;
            }
        };
        let _ = self
            .queue
            .ack(&lease.kind, &lease.id, Some(&lease.token))
            .await;
        done
    }

    /// Announces an end this engine recorded (see [`outbox::announce`]).
    async fn announce(&self, job: JobRef<'_>, end: &Terminal, ended: &Ended) {
        // The record's error is the one written: for a cancel, the reason
        // its request gave, if any.
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
        outbox::announce(&self.store, &self.events, job, &ending).await;
    }

    /// Puts the job back to run again after a backoff, announcing
    /// `job.retrying`.
    async fn retry(&self, lease: &Lease, error: &str) -> Finished {
        let delay = retry_delay(lease.attempt);
        let delay_ms = delay.as_millis() as u64;
        match self
            .with_retry("retry", || {
                self.store.retry_later(&lease.id, &lease.token, error)
            })
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                let _ = self
                    .queue
                    .ack(&lease.kind, &lease.id, Some(&lease.token))
                    .await;
                return Finished::NotOwner;
            }
            Err(e) => {
                tracing::error!(error = %e, "retry not recorded; the lease will lapse and the job run again");
                return Finished::NotWritten;
            }
        }
        metrics::retried(&lease.kind);
        tracing::info!(
            error,
            retry_in_ms = delay_ms,
            "attempt failed; retrying later"
        );
        if let Err(e) = self
            .queue
            .retry(&lease.kind, &lease.id, &lease.token, delay_ms)
            .await
        {
            tracing::warn!(error = %e, "retry not queued; the lease will lapse and the job run again");
        }
        if let Err(e) = self
            .events
            .retrying(&lease.id, lease.attempt, error, delay_ms)
            .await
        {
            tracing::warn!(error = %e, "job.retrying not published");
        }
        Finished::Retrying {
            retry_in_ms: delay_ms,
        }
    }

    /// Gives the job back at once without counting the attempt.
    async fn release(&self, lease: &Lease) -> Finished {
        tracing::info!("giving the job back");
        match self.store.release(&lease.id, &lease.token).await {
            Ok(true) => {
                let _ = self
                    .queue
                    .release(&lease.kind, &lease.id, &lease.token)
                    .await;
                Finished::Released
            }
            Ok(false) => Finished::NotOwner,
            Err(e) => {
                tracing::warn!(error = %e, "release not recorded; the lease will lapse and the job run again");
                Finished::NotWritten
            }
        }
    }
}
