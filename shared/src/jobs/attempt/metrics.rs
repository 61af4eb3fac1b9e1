//! The job metrics counted where attempts start and end, by kind (the same
//! names whoever holds the lease: a Rust worker or a worker over HTTP).
//!
//! - `relay_jobs_started_total`, `relay_jobs_completed_total`,
//!   `relay_jobs_failed_total`, `relay_jobs_cancelled_total`,
//!   `relay_jobs_retried_total`: counters.
//! - `relay_job_lease_reclaims_total`: jobs taken back from a lapsed lease;
//!   `relay_job_leases_lost_total`: attempts that lost their lease.
//! - `relay_job_wait_seconds` (submit to first start) and
//!   `relay_job_run_seconds` (start to end of the attempt that ended the job): histograms.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::jobs::store::Terminal;

pub(super) fn started(kind: &str, attempt: u32, created_at: DateTime<Utc>) {
    metrics::counter!("relay_jobs_started_total", "kind" => kind.to_string()).increment(1);
    if attempt == 1 {
        let waited = (Utc::now() - created_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::histogram!("relay_job_wait_seconds", "kind" => kind.to_string()).record(waited);
    }
}

pub(super) fn ended(kind: &str, end: &Terminal, ran: Duration) {
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

pub(super) fn retried(kind: &str) {
    metrics::counter!("relay_jobs_retried_total", "kind" => kind.to_string()).increment(1);
}

pub(super) fn reclaimed(kind: &str) {
    metrics::counter!("relay_job_lease_reclaims_total", "kind" => kind.to_string()).increment(1);
}

pub(super) fn lost(kind: &str) {
    metrics::counter!("relay_job_leases_lost_total", "kind" => kind.to_string()).increment(1);
}
