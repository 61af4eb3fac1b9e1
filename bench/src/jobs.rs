//! `jobs`: submit N no-op jobs (`sleep` with `{"ms":0,"steps":1}`) and
//! watch them complete on the `jobs` topic.
//!
//! Job state events on `jobs` do not carry the job id in the event itself
//! (it is in the `job:{id}` topic), so the per-job submit-to-completed
//! latency is taken from each job's record: `finished_at` (written by the
//! worker in PostgreSQL) minus the moment this process sent the submit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, now_us};
use crate::report::{histogram, latency_json, usage_json};
use crate::stack::{http_client, Target};

#[derive(Debug, Clone, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Jobs to submit.
    #[arg(long, default_value_t = 20000)]
    pub jobs: u64,
    /// Submits in flight at once.
    #[arg(long, default_value_t = 64)]
    pub submitters: usize,
    /// Workers to start with `--spawn` (each with `--concurrency`).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Longest wait for the last completion, seconds.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
}

fn rfc3339_us(s: &str) -> Option<u64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros() as u64)
}

pub async fn run(mut args: JobsArgs) -> Result<Value> {
    let stack = args
        .target
        .prepare(true, args.workers, args.concurrency)
        .await?;
    let target = Arc::new(args.target.clone());

    // Watch the `jobs` topic for terminal events.
    let mut ws = client::connect(&target.ws_url(0), None).await?;
    client::subscribe(&mut ws, "jobs", None, |_| {}).await?;
    let completed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let last_completed_us = Arc::new(AtomicU64::new(0));
    let n = args.jobs;
    let watcher = {
        let (completed, failed, last) =
            (completed.clone(), failed.clone(), last_completed_us.clone());
        tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else { continue };
                let text = text.as_str();
                if text.contains(r#""type":"job.completed""#) {
                    last.store(now_us(), Ordering::Relaxed);
                    if completed.fetch_add(1, Ordering::Relaxed) + 1 >= n {
                        break;
                    }
                } else if text.contains(r#""type":"job.failed""#)
                    || text.contains(r#""type":"job.cancelled""#)
                {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    let meters = args.target.meters(&stack);
    let http = http_client();
    let next = Arc::new(AtomicU64::new(0));
    let submit_errors = Arc::new(AtomicU64::new(0));
    let submitted: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
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
                let answer = http
                    .post(target.http_url(k as usize, "/v1/jobs"))
                    .header("x-api-key", &target.api_key)
                    .json(&json!({"kind": "sleep", "payload": {"ms": 0, "steps": 1}}))
                    .send()
                    .await;
                let id = match answer {
                    Ok(r) if r.status().as_u16() == 202 => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_string)),
                    Ok(r) => {
                        if errors.load(Ordering::Relaxed) < 5 {
                            eprintln!("submit {k}: HTTP {}", r.status());
                        }
                        None
                    }
                    Err(e) => {
                        if errors.load(Ordering::Relaxed) < 5 {
                            eprintln!("submit {k}: {e}");
                        }
                        None
                    }
                };
                match id {
                    Some(id) => {
                        submitted.lock().expect("lock").insert(id, sent);
                    }
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let submit_secs = started.elapsed().as_secs_f64();
    let accepted = submitted.lock().expect("lock").len() as u64;
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    while completed.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < accepted
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let usage: Vec<_> = meters.iter().map(|m| m.finish()).collect();
    watcher.abort();
    let done = completed.load(Ordering::Relaxed);
    let window = last_completed_us
        .load(Ordering::Relaxed)
        .saturating_sub(started_us)
        .max(1);

    // Submit-to-completed per job, from the records.
    let mut latency = histogram();
    let mut cursor: Option<String> = None;
    let submitted = submitted.lock().expect("lock").clone();
    let mut records = 0u64;
    for _ in 0..(accepted / 200 + 2) {
        let mut url = target.http_url(0, "/v1/jobs?state=completed&kind=sleep&limit=200");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(url)
            .header("x-api-key", &target.api_key)
            .send()
            .await?
            .json()
            .await
            .context("job list")?;
        for job in page["jobs"].as_array().into_iter().flatten() {
            let (Some(id), Some(fin)) = (job["id"].as_str(), job["finished_at"].as_str()) else {
                continue;
            };
            if let (Some(sent), Some(fin)) = (submitted.get(id), rfc3339_us(fin)) {
                latency.saturating_record(fin.saturating_sub(*sent).max(1));
                records += 1;
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
            _ => break,
        }
    }
    drop(stack);
    Ok(json!({
        "scenario": "jobs",
        "jobs": n,
        "accepted": accepted,
        "submit_errors": submit_errors.load(Ordering::Relaxed),
        "submit_secs": (submit_secs * 100.0).round() / 100.0,
        "submits_per_s": (accepted as f64 / submit_secs.max(0.001)).round(),
        "completed": done,
        "failed": failed.load(Ordering::Relaxed),
        "lost": accepted.saturating_sub(done + failed.load(Ordering::Relaxed)),
        "completions_per_s": (done as f64 / (window as f64 / 1e6)).round(),
        "records_matched": records,
        "submit_to_completed": latency_json(&latency),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "processes": usage_json(&usage),
    }))
}
