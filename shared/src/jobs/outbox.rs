//! Terminal events that are never lost and never doubled.
//!
//! The statement that records a job's end also puts a row in the outbox
//! (`store::outbox`), so an end recorded is an end that will be announced.
//! Its writer announces it right after the commit ([`announce`]); whoever
//! notices a row its writer did not clear in time (a sweep on any gateway
//! or worker, [`sweep`]) announces it again. Both publish through
//! [`JobEvents::ended`], which skips a topic that already has the job's
//! terminal event: the check and the publish are one Redis script, so a
//! writer and a sweep racing, a reply lost after a publish that happened,
//! or a row deleted late all still give a client exactly one terminal event
//! per topic.

use super::events::{Ending, JobEvents, JobRef};
use super::model::JobState;
use super::store::{Store, StoreError, Unannounced};

/// Most rows one sweep claims.
pub const SWEEP_BATCH: i64 = 200;

/// Announces an end this process just recorded (its outbox row is claimed
/// by this writer): publishes the terminal event, then clears the row.
/// `false` when Redis did not take it; a sweep will, once the claim lapses.
pub async fn announce(
    store: &Store,
    events: &JobEvents,
    job: JobRef<'_>,
    ending: &Ending<'_>,
) -> bool {
    crate::failpoint::hit("after_terminal_write").await;
    match events.ended(job, ending).await {
        Ok(()) => {
            store.outbox_done_soon(job.id);
            true
        }
        Err(e) => {
            tracing::warn!(job_id = job.id, error = %e, "terminal event not published yet; a sweep will publish it");
            false
        }
    }
}

/// The event of a row a sweep claimed.
fn ending(row: &Unannounced) -> Ending<'_> {
    const NONE: &serde_json::Value = &serde_json::Value::Null;
    let error = row.error.as_deref().unwrap_or("");
    match row.state {
        JobState::Completed => Ending::Completed {
            result: row.result.as_ref().unwrap_or(NONE),
        },
        JobState::Cancelled => Ending::Cancelled { reason: error },
        _ => Ending::Failed {
            error,
            attempts: row.attempts,
        },
    }
}

/// Publishes the terminal events whose writer did not clear its outbox row
/// within its claim; returns how many rows it cleared.
pub async fn sweep(store: &Store, events: &JobEvents) -> Result<usize, StoreError> {
    let rows = store.claim_outbox(SWEEP_BATCH).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let sent = futures_util::future::join_all(rows.iter().map(|row| async move {
        let job = JobRef::new(&row.id, &row.kind, &row.owner);
        events.ended(job, &ending(row)).await
    }))
    .await;
    let mut done = Vec::with_capacity(rows.len());
    for (row, r) in rows.iter().zip(sent) {
        match r {
            Ok(()) => {
                tracing::info!(job_id = %row.id, kind = %row.kind, state = row.state.as_str(), "sweep: published a terminal event its writer had not");
                done.push(row.id.clone());
            }
            Err(e) => {
                tracing::debug!(job_id = %row.id, error = %e, "sweep: terminal event not published; trying later")
            }
        }
    }
    store.outbox_done(&done).await?;
    metrics::counter!("relay_jobs_swept_total", "sweep" => "outbox").increment(done.len() as u64);
    Ok(done.len())
}
