//! The closed loop: N jobs, `--submitters` submits in flight at once, each
//! submitter sending its next job when the last one is answered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use serde_json::{json, Value};

use super::{finished_at, submit, JobsArgs, Watcher};
use crate::client::now_us;
use crate::redis_stats::RedisWindow;
use crate::report::{histogram, latency_json};
use crate::stack::{http_client, Stack};

pub(super) async fn run(args: &JobsArgs, stack: &Stack, watcher: &Watcher) -> Result<Value> {
    let target = Arc::new(args.target.clone());
    let redis = RedisWindow::start(target.redis_url.as_deref()).await;
    let accounting = target.account(stack);
    let http = http_client();
    let n = args.jobs;
    let next = Arc::new(AtomicU64::new(0));
    let submit_errors = Arc::new(AtomicU64::new(0));
    let submitted: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let (base_done, base_failed) = (watcher.completed(), watcher.failed());
    let started_us = now_us();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.submitters.max(1) {
        let (http, target, next, errors, submitted) = (
            http.clone(),
            target.clone(),
            next.clone(),
            submit_errors.clone(),
            submitted.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    break;
                }
                let sent = now_us();
                match submit(&http, &target, k).await {
                    Ok(id) => {
                        submitted.lock().expect("lock").insert(id, sent);
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("submit {k}: {e}");
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let submit_secs = started.elapsed().as_secs_f64();
    let submitted = std::mem::take(&mut *submitted.lock().expect("lock"));
    let accepted = submitted.len() as u64;
    watcher
        .wait_ended(base_done + base_failed, accepted, args.timeout)
        .await;
    let window = accounting.finish();
    let redis = redis.finish().await;
    let done = watcher.completed() - base_done;
    let failed = watcher.failed() - base_failed;
    let span = watcher
        .last_completed_us()
        .saturating_sub(started_us)
        .max(1);

    // Submit-to-completed per job, from the records.
    let finished = finished_at(&http, &target, submitted.keys()).await?;
    let mut latency = histogram();
    for (id, fin) in &finished {
        if let Some(sent) = submitted.get(id) {
            latency.saturating_record(fin.saturating_sub(*sent).max(1));
        }
    }
    let mut to_event = histogram();
    for (id, sent) in &submitted {
        if let Some(seen) = watcher.seen_at(id) {
            to_event.saturating_record(seen.saturating_sub(*sent).max(1));
        }
    }
    Ok(json!({
        "scenario": "jobs",
        "jobs": n,
        "submitters": args.submitters,
        "accepted": accepted,
        "submit_errors": submit_errors.load(Ordering::Relaxed),
        "submit_secs": (submit_secs * 100.0).round() / 100.0,
        "submits_per_s": (accepted as f64 / submit_secs.max(0.001)).round(),
        "completed": done,
        "failed": failed,
        "lost": accepted.saturating_sub(done + failed),
        "completions_per_s": (done as f64 / (span as f64 / 1e6)).round(),
        "records_matched": finished.len(),
        // The `jobs` subscription ended early: the counts stopped there.
        "events_subscription_lost": watcher.lost_subscription(),
        "submit_to_completed": latency_json(&latency),
        "submit_to_event": (!to_event.is_empty()).then(|| latency_json(&to_event)),
        "processes": window.processes_json(),
        "cost": window.cost_json(&[("job", done)]),
        "redis": redis,
    }))
}
