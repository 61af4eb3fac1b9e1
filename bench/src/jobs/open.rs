//! The open loop: job k is due at `start + k/rate`, whatever happened to
//! the jobs before it. Every latency is measured from the due time, so time
//! a submit spent waiting (for the load generator, for a free slot among
//! `--max-in-flight`, for the gateway's answer) counts against the stack, as
//! it would for a real producer with a schedule of its own.
//!
//! A job still unfinished when the wait for completions ends counts at that
//! moment (a lower bound of its latency), so a rate the stack cannot keep
//! shows in the percentiles even when the run is cut short.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::{finished_at, submit, JobsArgs, Watcher};
use crate::client::now_us;
use crate::redis_stats::RedisWindow;
use crate::report::{histogram, latency_json, ms, round};
use crate::stack::{http_client, Stack};

/// One open-loop run at one rate.
pub(crate) struct Step {
    pub(crate) rate: f64,
    pub(crate) p99_ms: f64,
    /// Accepted jobs not seen ending before the wait ran out.
    pub(crate) incomplete: u64,
    pub(crate) submit_errors: u64,
    pub(crate) failed: u64,
    pub(crate) json: Value,
}

impl Step {
    /// Whether this rate was kept: p99 within `target_ms`, every job
    /// submitted and completed.
    pub(crate) fn passed(&self, target_ms: f64) -> bool {
        self.p99_ms <= target_ms
            && self.incomplete == 0
            && self.submit_errors == 0
            && self.failed == 0
    }
}

/// A job's due time (µs since the epoch) and whether it is measured.
#[derive(Clone, Copy)]
struct Due {
    at_us: u64,
    measured: bool,
}

pub(crate) async fn step(
    args: &JobsArgs,
    rate: f64,
    stack: &Stack,
    watcher: &Watcher,
) -> Result<Step> {
    let rate = rate.max(0.1);
    let target = Arc::new(args.target.clone());
    let http = http_client();
    let warm = (rate * args.warmup.max(0.0)).round() as u64;
    let n = warm + (rate * args.duration).round().max(1.0) as u64;
    let (base_done, base_failed) = (watcher.completed(), watcher.failed());
    let redis = RedisWindow::start(target.redis_url.as_deref()).await;
    let accounting = target.account(stack);

    let slots = Arc::new(Semaphore::new(args.max_in_flight.max(1)));
    let accepted: Arc<Mutex<HashMap<String, Due>>> = Arc::default();
    let answer = Arc::new(Mutex::new(histogram()));
    let errors = Arc::new(AtomicU64::new(0));
    let mut lag = histogram();
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let start_us = now_us() + 20_000;
    for k in 0..n {
        let offset = Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(start + offset).await;
        let permit = slots.clone().acquire_owned().await?;
        let due = Due {
            at_us: start_us + offset.as_micros() as u64,
            measured: k >= warm,
        };
        lag.saturating_record(now_us().saturating_sub(due.at_us).max(1));
        let (http, target, accepted, answer, errors) = (
            http.clone(),
            target.clone(),
            accepted.clone(),
            answer.clone(),
            errors.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            match submit(&http, &target, k).await {
                Ok(id) => {
                    let took = now_us().saturating_sub(due.at_us).max(1);
                    answer.lock().expect("lock").saturating_record(took);
                    accepted.lock().expect("lock").insert(id, due);
                }
                Err(e) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("submit {k}: {e}");
                    }
                }
            }
        });
    }
    // Every submit answered.
    let _all = slots.acquire_many(args.max_in_flight.max(1) as u32).await?;
    let submit_secs = start.elapsed().as_secs_f64();
    let accepted = std::mem::take(&mut *accepted.lock().expect("lock"));
    let n_accepted = accepted.len() as u64;
    watcher
        .wait_ended(base_done + base_failed, n_accepted, args.timeout)
        .await;
    let gave_up_us = now_us();
    let window = accounting.finish();
    let redis = redis.finish().await;
    let done = watcher.completed() - base_done;
    let failed = watcher.failed() - base_failed;
    let span = watcher.last_completed_us().saturating_sub(start_us).max(1);

    let finished = finished_at(&http, &target, accepted.keys()).await?;
    let (latency, unfinished) = latencies(&accepted, |id| finished.get(id).copied(), gave_up_us);
    let (to_event, _) = latencies(&accepted, |id| watcher.seen_at(id), gave_up_us);
    let events_carry_ids = accepted.keys().any(|id| watcher.seen_at(id).is_some());
    let submit_errors = errors.load(Ordering::Relaxed);
    let incomplete = n_accepted.saturating_sub(done + failed);
    let p99_ms = ms(latency.value_at_quantile(0.99));
    let json = json!({
        "scenario": "jobs-open",
        "rate": rate,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "scheduled": n,
        "measured": n - warm,
        "max_in_flight": args.max_in_flight,
        "accepted": n_accepted,
        "submit_errors": submit_errors,
        "submit_secs": round(submit_secs, 2),
        "completed": done,
        "failed": failed,
        "incomplete": incomplete,
        "records_matched": finished.len(),
        // The `jobs` subscription ended early: the counts stopped there.
        "events_subscription_lost": watcher.lost_subscription(),
        "unfinished_counted_at_deadline": unfinished,
        "completions_per_s": round(done as f64 / (span as f64 / 1e6), 0),
        "submit_to_completed": latency_json(&latency),
        "submit_to_event": events_carry_ids.then(|| latency_json(&to_event)),
        "submit_answer": latency_json(&answer.lock().expect("lock")),
        "schedule_lag": latency_json(&lag),
        "processes": window.processes_json(),
        "cost": window.cost_json(&[("job", done)]),
        "redis": redis,
    });
    Ok(Step {
        rate,
        p99_ms,
        incomplete,
        submit_errors,
        failed,
        json,
    })
}

/// Due-to-end latency of the measured jobs; a job without an end counts at
/// `gave_up_us`. Returns the histogram and how many had no end.
fn latencies(
    jobs: &HashMap<String, Due>,
    end: impl Fn(&str) -> Option<u64>,
    gave_up_us: u64,
) -> (Histogram<u64>, u64) {
    let mut h = histogram();
    let mut unfinished = 0;
    for (id, due) in jobs.iter().filter(|(_, d)| d.measured) {
        let at = end(id).unwrap_or_else(|| {
            unfinished += 1;
            gave_up_us
        });
        h.saturating_record(at.saturating_sub(due.at_us).max(1));
    }
    (h, unfinished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_jobs_count_at_the_deadline_and_warmup_is_left_out() {
        let due = |at_us, measured| Due { at_us, measured };
        let jobs: HashMap<String, Due> = [
            ("a".to_string(), due(1_000, true)),
            ("b".to_string(), due(2_000, true)),
            ("w".to_string(), due(0, false)),
        ]
        .into();
        let ends: HashMap<&str, u64> = [("a", 6_000), ("w", 1)].into();
        let (h, unfinished) = latencies(&jobs, |id| ends.get(id).copied(), 102_000);
        assert_eq!(unfinished, 1);
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 5_000);
        assert!(h.max() >= 99_900, "{}", h.max());
    }
}
