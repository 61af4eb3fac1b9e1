//! Leasing and starting attempts.

use super::finish::Outcome;
use super::{metrics, Attempt, Engine, Lease};
use crate::jobs::queue::{self, Pulled, QueueError};
use crate::jobs::store::Terminal;

/// What starting a pulled job came to.
#[derive(Debug)]
pub enum Start {
    /// The attempt runs: hand it to a runner.
    Run(Attempt),
    /// The job must not run (ended or dropped here).
    Done,
    /// PostgreSQL did not answer; the job was given back. Pause before
    /// pulling again.
    Trouble,
}

/// What [`Engine::lease`] got.
#[derive(Debug, Default)]
pub struct Leased {
    pub attempts: Vec<Attempt>,
    /// Milliseconds until the next delayed job of the kind is due, if any.
    pub next_delayed_ms: Option<u64>,
    /// Some job could not be started (PostgreSQL away) and was given back.
    pub trouble: bool,
}

impl Engine {
    /// Takes up to `n` jobs of `kind` from the queue, each under a fresh
    /// lease held by `worker`; [`Engine::start`] each.
    pub async fn pull(&self, kind: &str, worker: &str, n: usize) -> Result<Pulled, QueueError> {
        let per_owner = self.settings.max_running_per_owner;
        self.queue
            .pull(kind, worker, self.lease_ms(), n, per_owner)
            .await
    }

    /// Starts a pulled job's attempt: `running` in PostgreSQL under its
    /// lease token, then `job.started`. A job cancelled before it started,
    /// out of attempts (by lapsed leases) or already ended is ended or
    /// dropped here instead.
    pub async fn start(&self, job: queue::Leased, worker: &str) -> Start {
        let lease = Lease {
            id: job.id,
            kind: job.kind,
            token: job.token,
            attempt: job.attempt,
        };
        if job.exhausted {
            let error = format!(
                "lease expired on all {} attempts (the worker running it stopped)",
                job.max_attempts
            );
            self.end_unfenced(&lease, Terminal::Failed { error }).await;
            return Start::Done;
        }
        if job.cancel {
            let reason = "cancelled by request".to_string();
            self.end_unfenced(&lease, Terminal::Cancelled { reason })
                .await;
            return Start::Done;
        }
        let started = match self
            .store
            .start_attempt(&lease.id, &lease.token, lease.attempt, worker)
            .await
        {
            Ok(Some(s)) => s,
            Ok(None) => {
                tracing::debug!("job already ended; dropping it from the queue");
                let _ = self
                    .queue
                    .ack(&lease.kind, &lease.id, Some(&lease.token))
                    .await;
                return Start::Done;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the job; giving it back");
                let _ = self
                    .queue
                    .release(&lease.kind, &lease.id, &lease.token)
                    .await;
                return Start::Trouble;
            }
        };
        let attempt = Attempt {
            lease,
            owner: started.owner,
            payload: started.payload,
            max_attempts: job.max_attempts,
            timeout_ms: job.timeout_ms,
            created_at: started.created_at,
        };
        if started.cancel_requested {
            let reason = "cancelled by request".to_string();
            self.finish(
                &attempt,
                Outcome::Cancelled(reason),
                None,
                Default::default(),
            )
            .await;
            return Start::Done;
        }
        metrics::started(
            &attempt.lease.kind,
            attempt.lease.attempt,
            attempt.created_at,
        );
        if let Err(e) = self
            .events
            .started(attempt.job(), attempt.lease.attempt, worker)
            .await
        {
            tracing::warn!(error = %e, "job.started not published");
        }
        Start::Run(attempt)
    }

    /// [`Engine::pull`] and [`Engine::start`] of every job pulled (the
    /// starts share statements): the attempts to run.
    pub async fn lease(&self, kind: &str, worker: &str, n: usize) -> Result<Leased, QueueError> {
        let pulled = self.pull(kind, worker, n).await?;
        let starts = futures_util::future::join_all(
            pulled.jobs.into_iter().map(|job| self.start(job, worker)),
        )
        .await;
        let mut out = Leased {
            next_delayed_ms: pulled.next_delayed_ms,
            ..Leased::default()
        };
        for s in starts {
            match s {
                Start::Run(a) => out.attempts.push(a),
                Start::Done => {}
                Start::Trouble => out.trouble = true,
            }
        }
        Ok(out)
    }
}
