//! The gateway's sweeps. Every gateway runs them; they are idempotent, so
//! several at once do no harm.
//!
//! - Every 2 s: jobs recorded more than 5 s ago and never enqueued (the
//!   gateway died, or Redis was away, between the two steps) are enqueued.
//! - Every 30 s: a batch of live jobs untouched for a minute is checked
//!   against the queue, and jobs it lost (Redis restarted without its data)
//!   are enqueued again.
//! - Every 10 min: uploads left incomplete for an hour are removed.

use std::time::Duration;

use chrono::Utc;
use relay_shared::jobs::store::Cursor;
use relay_shared::jobs::Jobs;
use tokio_util::sync::CancellationToken;

pub const NOT_ENQUEUED_EVERY: Duration = Duration::from_secs(2);
pub const NOT_ENQUEUED_GRACE: Duration = Duration::from_secs(5);
pub const LOST_EVERY: Duration = Duration::from_secs(30);
pub const LOST_AFTER: Duration = Duration::from_secs(60);
pub const LOST_BATCH: i64 = 200;
pub const UPLOADS_EVERY: Duration = Duration::from_secs(600);
pub const UPLOADS_ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// Runs the sweeps until `stop` fires.
pub async fn run(jobs: Jobs, stop: CancellationToken) {
    let mut not_enqueued = tokio::time::interval(NOT_ENQUEUED_EVERY);
    let mut lost = tokio::time::interval(LOST_EVERY);
    let mut uploads = tokio::time::interval(UPLOADS_EVERY);
    for t in [&mut not_enqueued, &mut lost, &mut uploads] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut cursor: Option<Cursor> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = not_enqueued.tick() => {
                if !jobs.store.is_migrated() {
                    continue;
                }
                match jobs.sweep_not_enqueued(NOT_ENQUEUED_GRACE).await {
                    Ok(0) => {}
                    Ok(n) => metrics::counter!("relay_jobs_swept_total", "sweep" => "not_enqueued").increment(n as u64),
                    Err(e) => tracing::debug!(error = %e, "not-enqueued sweep failed"),
                }
            }
            _ = lost.tick() => {
                if !jobs.store.is_migrated() {
                    continue;
                }
                match jobs.sweep_lost(&mut cursor, LOST_AFTER, LOST_BATCH).await {
                    Ok(0) => {}
                    Ok(n) => metrics::counter!("relay_jobs_swept_total", "sweep" => "lost").increment(n as u64),
                    Err(e) => tracing::debug!(error = %e, "lost-job sweep failed"),
                }
            }
            _ = uploads.tick() => {
                if !jobs.store.is_migrated() {
                    continue;
                }
                let before = Utc::now() - chrono::Duration::from_std(UPLOADS_ABANDONED_AFTER).unwrap_or_default();
                match jobs.store.delete_incomplete_uploads(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(uploads = n, "removed abandoned uploads"),
                    Err(e) => tracing::debug!(error = %e, "upload sweep failed"),
                }
            }
        }
    }
}
