//! The worker's metrics (prefix `relay_`), by kind.
//!
//! - `relay_jobs_started_total`, `relay_jobs_completed_total`,
//!   `relay_jobs_failed_total`, `relay_jobs_cancelled_total`,
//!   `relay_jobs_retried_total`: counters.
//! - `relay_job_lease_reclaims_total`: jobs taken back from a lapsed lease;
//!   `relay_job_leases_lost_total`: attempts here that lost their lease.
//! - `relay_job_wait_seconds` (submit to first start) and
//!   `relay_job_run_seconds` (start to end of the attempt that ended the job): histograms.
//! - `relay_queue_depth{kind,state}`: waiting, delayed, running, dead.
//! - `relay_worker_running_jobs`, `relay_worker_concurrency`: gauges.

use std::time::Duration;

use chrono::{DateTime, Utc};
use relay_shared::jobs::queue::Depth;
use relay_shared::jobs::store::Terminal;

pub(crate) fn started(kind: &str, attempt: u32, created_at: DateTime<Utc>) {
    metrics::counter!("relay_jobs_started_total", "kind" => kind.to_string()).increment(1);
    if attempt == 1 {
        let waited = (Utc::now() - created_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::histogram!("relay_job_wait_seconds", "kind" => kind.to_string()).record(waited);
    }
}

pub(crate) fn ended(kind: &str, end: &Terminal, ran: Duration) {
    let name = match end {
        Terminal::Completed { .. } => "relay_jobs_completed_total",
        Terminal::Failed { .. } => "relay_jobs_failed_total",
        Terminal::Cancelled { .. } => "relay_jobs_cancelled_total",
    };
    metrics::counter!(name, "kind" => kind.to_string()).increment(1);
    if !ran.is_zero() {
        metrics::histogram!("relay_job_run_seconds", "kind" => kind.to_string())
            .record(ran.as_secs_f64());
    }
}

pub(crate) fn retried(kind: &str) {
    metrics::counter!("relay_jobs_retried_total", "kind" => kind.to_string()).increment(1);
}

pub(crate) fn reclaimed(kind: &str) {
    metrics::counter!("relay_job_lease_reclaims_total", "kind" => kind.to_string()).increment(1);
}

pub(crate) fn lost(kind: &str) {
    metrics::counter!("relay_job_leases_lost_total", "kind" => kind.to_string()).increment(1);
}

pub(crate) fn depth(kind: &str, d: Depth) {
    for (state, n) in [
        ("waiting", d.waiting),
        ("delayed", d.delayed),
        ("running", d.running),
    ] {
        metrics::gauge!("relay_queue_depth", "kind" => kind.to_string(), "state" => state)
            .set(n as f64);
    }
}

pub(crate) fn dead(kind: &str, n: i64) {
    metrics::gauge!("relay_queue_depth", "kind" => kind.to_string(), "state" => "dead")
        .set(n as f64);
}

pub(crate) fn running(running: usize, concurrency: usize) {
    metrics::gauge!("relay_worker_running_jobs").set(running as f64);
    metrics::gauge!("relay_worker_concurrency").set(concurrency as f64);
}
