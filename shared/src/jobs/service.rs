//! [`Jobs`]: what the gateway does with jobs (submit, cancel, re-drive, the
//! sweeps), on top of the store, the queue and the events.
//!
//! Submit records first and enqueues second: once the record is written the
//! job will run, because the sweep enqueues whatever was recorded and never
//! enqueued (a crash or a Redis outage between the two steps).

use std::time::Duration;

use chrono::Utc;

use super::events::{Ending, JobEvents, JobRef};
use super::model::{JobRecord, JobState, NewJob};
use super::outbox;
use super::queue::{CancelOutcome, Queue, QueueError};
use super::store::{Cursor, QueueEntry, Store, StoreError, Terminal};

/// What went wrong with a job operation.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The job kept changing state under a cancel; the caller may try again.
    #[error("the job changed state while being cancelled; try again")]
    Busy,
}

impl JobsError {
    pub fn is_unavailable(&self) -> bool {
        match self {
            JobsError::Store(e) => e.is_unavailable(),
            JobsError::Queue(e) => e.is_unavailable(),
            JobsError::Busy => true,
        }
    }
}

/// What a cancel did.
#[derive(Debug, Clone)]
pub enum CancelResult {
    /// The job is cancelled (it was queued, or no worker held it).
    Cancelled(JobRecord),
    /// The job is running; its worker was told to stop and will end it `cancelled`.
    Stopping(JobRecord),
    /// The job had already ended.
    AlreadyEnded(JobRecord),
    NotFound,
}

/// Job operations; cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    pub store: Store,
    pub queue: Queue,
    pub events: JobEvents,
}

impl Jobs {
    pub fn new(store: Store, queue: Queue, events: JobEvents) -> Self {
        Self {
            store,
            queue,
            events,
        }
    }

    /// Records a job, enqueues it and publishes `job.queued`. Returns the
    /// record and whether it is new (`false`: the owner's earlier job with
    /// the same idempotency key). Fails only when the record could not be
    /// written; a job whose enqueue failed is enqueued by the sweep.
    pub async fn submit(&self, job: NewJob) -> Result<(JobRecord, bool), JobsError> {
        let (record, created) = self.store.insert_job(&job).await?;
        if !created {
            return Ok((record, false));
        }
        metrics::counter!("relay_jobs_submitted_total", "kind" => job.kind.clone()).increment(1);
        // Announce before the job can start, so `job.queued` precedes `job.started`.
        if let Err(e) = self.events.queued(&record).await {
            tracing::warn!(job_id = %job.id, error = %e, "job.queued not published");
        }
        match self.queue.enqueue(&QueueEntry::new(&job)).await {
            // Noted in the background: starting the job notes it too, and
            // a note never written only makes the sweep check the job.
            Ok(_) => self.store.mark_enqueued_soon(&job.id),
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "recorded but not enqueued; the sweep will enqueue it")
            }
        }
        Ok((record, true))
    }

    /// Cancels a job: a queued one at once; a running one by telling its worker.
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<CancelResult, JobsError> {
        for _ in 0..5 {
            let Some(job) = self.store.get_job(id).await? else {
                return Ok(CancelResult::NotFound);
            };
            match job.state {
                s if s.is_terminal() => return Ok(CancelResult::AlreadyEnded(job)),
                JobState::Queued => {
                    if let Some(done) = self.store.cancel_queued(id, reason).await? {
                        self.announce_cancelled(&done).await;
                        if let Err(e) = self.queue.cancel(&done.kind, id).await {
                            tracing::warn!(job_id = id, error = %e, "cancelled job left in the queue; its worker will drop it");
                        }
                        return Ok(CancelResult::Cancelled(done));
                    }
                }
                _ => {
                    if self.store.request_cancel(id, reason).await? {
                        match self.queue.cancel(&job.kind, id).await? {
                            CancelOutcome::Signalled => return Ok(CancelResult::Stopping(job)),
                            // No worker holds it (taken back, or lost with Redis): end it here.
                            CancelOutcome::Removed | CancelOutcome::Absent => {
                                let end = Terminal::Cancelled {
                                    reason: reason.to_string(),
                                };
                                if let Some(done) = self.store.finish(id, None, &end, None).await? {
                                    self.announce_cancelled(&done).await;
                                    return Ok(CancelResult::Cancelled(done));
                                }
                            }
                        }
                    }
                }
            }
        }
        Err(JobsError::Busy)
    }

    /// Announces a cancel this call recorded (with the reason the record kept).
    async fn announce_cancelled(&self, job: &JobRecord) {
        metrics::counter!("relay_jobs_cancelled_total", "kind" => job.kind.clone()).increment(1);
        let reason = job.error.as_deref().unwrap_or("cancelled");
        let ending = Ending::Cancelled { reason };
        outbox::announce(&self.store, &self.events, JobRef::of(job), &ending).await;
    }

    /// Publishes terminal events whose writer did not (see [`outbox::sweep`]).
    pub async fn sweep_outbox(&self) -> Result<usize, JobsError> {
        Ok(outbox::sweep(&self.store, &self.events).await?)
    }

    /// Re-drives a dead letter as a new job; `None` when `id` is not a dead letter.
    pub async fn redrive(&self, id: &str) -> Result<Option<JobRecord>, JobsError> {
        let Some((record, entry)) = self.store.redrive(id).await? else {
            return Ok(None);
        };
        metrics::counter!("relay_jobs_submitted_total", "kind" => record.kind.clone()).increment(1);
        if let Err(e) = self.events.queued(&record).await {
            tracing::warn!(job_id = %record.id, error = %e, "job.queued not published");
        }
        if self.queue.enqueue(&entry).await.is_ok() {
            let _ = self
                .store
                .mark_enqueued(std::slice::from_ref(&record.id))
                .await;
        }
        Ok(Some(record))
    }

    /// Enqueues jobs recorded more than `grace` ago and never noted as
    /// enqueued; returns how many the queue did not hold.
    pub async fn sweep_not_enqueued(&self, grace: Duration) -> Result<usize, JobsError> {
        let before = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
        let entries = self.store.not_enqueued(before, 500).await?;
        let mut done = Vec::with_capacity(entries.len());
        let mut enqueued = 0;
        for e in &entries {
            // `false`: the queue held it already (its enqueue note was lost).
            if self.queue.enqueue(e).await? {
                tracing::info!(job_id = %e.id, kind = %e.kind, "sweep: enqueued a job that was recorded but not enqueued");
                enqueued += 1;
            }
            done.push(e.id.clone());
        }
        self.store.mark_enqueued(&done).await?;
        Ok(enqueued)
    }

    /// Checks a batch of live jobs not updated for `older_than` against the
    /// queue, and enqueues those it lost (e.g. Redis restarted without its
    /// data). `cursor` walks the live jobs across calls; returns how many
    /// were enqueued again.
    pub async fn sweep_lost(
        &self,
        cursor: &mut Option<Cursor>,
        older_than: Duration,
        batch: i64,
    ) -> Result<usize, JobsError> {
        let before = Utc::now() - chrono::Duration::from_std(older_than).unwrap_or_default();
        let rows = self
            .store
            .stale_live(before, cursor.as_ref(), batch)
            .await?;
        if rows.is_empty() {
            *cursor = None;
            return Ok(0);
        }
        let mut n = 0;
        for (entry, at) in rows {
            if !self.queue.holds(&entry.kind, &entry.id).await? {
                self.queue.enqueue(&entry).await?;
                tracing::warn!(job_id = %entry.id, kind = %entry.kind, "sweep: the queue had lost a live job; enqueued it again");
                n += 1;
            }
            *cursor = Some(at);
        }
        Ok(n)
    }
}
