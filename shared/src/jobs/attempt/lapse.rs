//! Lease renewal for a process holding many leases, and the reclaim of
//! lapsed ones.

use super::{metrics, Engine};
use crate::jobs::queue::QueueError;

/// Most leases renewed in one script call.
const RENEW_BATCH: usize = 500;

/// What a renewal found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewal {
    /// Jobs whose lease this holder lost: stop them and write nothing.
    pub lost: Vec<String>,
    /// Jobs asked to stop (cancelled): stop them, then end them `cancelled`.
    pub cancel: Vec<String>,
}

impl Engine {
    /// Renews leases `(id, token)` of one kind (in batches); reports the
    /// ones lost and the ones asked to stop.
    pub async fn renew(
        &self,
        kind: &str,
        leases: &[(String, String)],
    ) -> Result<Renewal, QueueError> {
        let mut out = Renewal::default();
        for batch in leases.chunks(RENEW_BATCH) {
            let (lost, cancel) = self.queue.renew(kind, batch, self.lease_ms()).await?;
            out.lost.extend(lost);
            out.cancel.extend(cancel);
        }
        Ok(out)
    }

    /// Takes back up to `max` jobs of `kind` whose lease lapsed (the holder
    /// died, hung or lost its network): each runs again, the attempt
    /// counted, announced by `job.retrying`. One out of attempts is ended
    /// `failed` by the next taker, one whose cancel its holder never
    /// acknowledged `cancelled`. Returns how many were taken back.
    pub async fn reclaim(&self, kind: &str, max: usize) -> Result<usize, QueueError> {
        let reclaimed = self.queue.reclaim(kind, max).await?;
        for r in &reclaimed {
            metrics::reclaimed(kind);
            tracing::warn!(job_id = %r.id, kind, attempt = r.attempt, worker = %r.worker, exhausted = r.exhausted, cancel = r.cancel, "lease lapsed; job taken back");
            if !r.exhausted && !r.cancel {
                let error = format!("lease expired (worker {} stopped renewing)", r.worker);
                if let Err(e) = self.events.retrying(&r.id, r.attempt, &error, 0).await {
                    tracing::debug!(error = %e, "job.retrying not published");
                }
            }
        }
        Ok(reclaimed.len())
    }
}
