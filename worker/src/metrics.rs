//! The worker's own metrics (prefix `relay_`); the job counters and
//! histograms are counted by the attempt engine
//! (`relay_shared::jobs::attempt`).
//!
//! - `relay_queue_depth{kind,state}`: waiting, delayed, running, dead.
//! - `relay_worker_running_jobs`, `relay_worker_concurrency`: gauges.

use relay_shared::jobs::queue::Depth;

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
