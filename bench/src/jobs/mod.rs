//! `jobs`: no-op jobs (`sleep` with `{"ms":0,"steps":1}`) submitted with
//! `POST /v1/jobs` and watched to completion on the `jobs` topic.
//!
//! Three modes:
//!
//! - closed loop (default, [`closed`]): N jobs, a fixed number of submits in
//!   flight; the throughput the stack sustains when it sets the pace;
//! - open loop (`--rate R`, [`open`]): submits on a fixed schedule, job k at
//!   `start + k/R`, each latency measured from its *scheduled* time, so a
//!   stack (or a load generator) that falls behind shows it in the
//!   latency instead of hiding it in a slower schedule;
//! - `--find-rate` ([`sweep`]): open-loop steps at rising rates, then a
//!   bisection, for the highest rate whose p99 stays within
//!   `--target-p99-ms` with every job completed; bounded by `--budget`.
//!
//! Job state events on `jobs` do not carry the job id in their frame's
//! topic, so the per-job submit-to-completed latency is taken from each
//! job's record: `finished_at` (written by the worker in PostgreSQL) minus
//! the moment the submit was sent (closed loop) or scheduled (open loop).
//! When the events carry `data.job_id`, the time the `job.completed` event
//! reached this subscriber is reported too (`submit_to_event`).

mod closed;
mod open;
mod sweep;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Args;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, now_us};
use crate::stack::Target;

#[derive(Debug, Clone, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Closed loop: jobs to submit.
    #[arg(long, default_value_t = 20000)]
    pub jobs: u64,
    /// Closed loop: submits in flight at once.
    #[arg(long, default_value_t = 64)]
    pub submitters: usize,
    /// Workers to start with `--spawn` (each with `--concurrency`).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Longest wait for the last completion, seconds (per step in a sweep).
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Open loop: submit this many jobs per second on a fixed schedule
    /// (with `--find-rate`, the first rate tried).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: seconds of measured submits (rate × duration jobs).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Open loop: seconds of submits at the same rate before the measured
    /// ones (connections, caches); their latency is not recorded.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Open loop: most submits awaiting their answer at once; when reached,
    /// the schedule slips (reported as `schedule_lag`, and counted in the latency).
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
    /// Sweep open-loop rates for the highest with p99 ≤ `--target-p99-ms`.
    #[arg(long)]
    pub find_rate: bool,
    /// Sweep: the p99 submit-to-completed a rate must keep, milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub target_p99_ms: f64,
    /// Sweep: each rising step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    pub step_factor: f64,
    /// Sweep: bisection steps between the best passing and the first failing rate.
    #[arg(long, default_value_t = 3)]
    pub refine: u32,
    /// Sweep: highest rate tried.
    #[arg(long, default_value_t = 50000.0)]
    pub max_rate: f64,
    /// Sweep: seconds the whole sweep may take (no step starts whose submits would end after it).
    #[arg(long, default_value_t = 240.0)]
    pub budget: f64,
}

impl JobsArgs {
    /// Closed-loop defaults for `jobs` jobs against `target`.
    pub fn closed(target: Target, jobs: u64) -> JobsArgs {
        JobsArgs {
            target,
            jobs,
            submitters: 64,
            workers: 1,
            concurrency: 50,
            timeout: 120.0,
            rate: None,
            duration: 10.0,
            warmup: 1.0,
            max_in_flight: 4096,
            find_rate: false,
            target_p99_ms: 50.0,
            step_factor: 1.5,
            refine: 3,
            max_rate: 50000.0,
            budget: 240.0,
        }
    }
}

pub async fn run(mut args: JobsArgs) -> Result<Value> {
    let stack = args
        .target
        .prepare(true, args.workers, args.concurrency)
        .await?;
    let watcher = Watcher::start(&args.target).await?;
    let out = if args.find_rate {
        sweep::run(&args, &stack, &watcher).await
    } else if let Some(rate) = args.rate {
        let step = open::step(&args, rate, &stack, &watcher).await?;
        let mut v = step.json;
        v["scenario"] = "jobs-open".into();
        Ok(v)
    } else {
        closed::run(&args, &stack, &watcher).await
    };
    drop(watcher);
    drop(stack);
    let mut v = out?;
    v["peer"] = "relay".into();
    v["workers"] = args.workers.into();
    v["concurrency"] = args.concurrency.into();
    Ok(v)
}

/// Counts the terminal events on `jobs` (and, when the events carry
/// `data.job_id`, when each job's `job.completed` arrived).
pub(crate) struct Watcher {
    completed: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    last_us: Arc<AtomicU64>,
    ended: Arc<AtomicBool>,
    seen: Arc<Mutex<HashMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    async fn start(target: &Target) -> Result<Watcher> {
        let mut ws = client::connect(&target.ws_url(0), None).await?;
        client::subscribe(&mut ws, "jobs", None, |_| {}).await?;
        let completed: Arc<AtomicU64> = Arc::default();
        let failed: Arc<AtomicU64> = Arc::default();
        let last_us: Arc<AtomicU64> = Arc::default();
        let ended: Arc<AtomicBool> = Arc::default();
        let seen: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let task = {
            let (completed, failed, last, ended, seen) = (
                completed.clone(),
                failed.clone(),
                last_us.clone(),
                ended.clone(),
                seen.clone(),
            );
            tokio::spawn(async move {
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let text = text.as_str();
                    if text.contains(r#""type":"job.completed""#) {
                        let now = now_us();
                        if let Some(id) = client::string_after(text, r#""job_id":""#) {
                            seen.lock().expect("lock").insert(id.to_string(), now);
                        }
                        last.store(now, Ordering::Relaxed);
                        completed.fetch_add(1, Ordering::Relaxed);
                    } else if text.contains(r#""type":"job.failed""#)
                        || text.contains(r#""type":"job.cancelled""#)
                    {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                ended.store(true, Ordering::Relaxed);
            })
        };
        Ok(Watcher {
            completed,
            failed,
            last_us,
            ended,
            seen,
            task,
        })
    }

    /// Jobs seen ending (completed, failed or cancelled) so far.
    fn ended_jobs(&self) -> u64 {
        self.completed.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    fn last_completed_us(&self) -> u64 {
        self.last_us.load(Ordering::Relaxed)
    }

    /// Whether the subscription ended (the counts stop then).
    fn lost_subscription(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// When `job.completed` of `id` arrived, if the events carry ids.
    fn seen_at(&self, id: &str) -> Option<u64> {
        self.seen.lock().expect("lock").get(id).copied()
    }

    /// Waits until `n` jobs more than `base` have ended, the subscription
    /// is lost, or `timeout` seconds pass.
    async fn wait_ended(&self, base: u64, n: u64, timeout: f64) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs_f64(timeout);
        while self.ended_jobs().saturating_sub(base) < n
            && !self.lost_subscription()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Submits one no-op job; its id when accepted (202).
pub(crate) async fn submit(
    http: &reqwest::Client,
    target: &Target,
    k: u64,
) -> std::result::Result<String, String> {
    let r = http
        .post(target.http_url(k as usize, "/v1/jobs"))
        .header("x-api-key", &target.api_key)
        .json(&json!({"kind": "sleep", "payload": {"ms": 0, "steps": 1}}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 202 {
        return Err(format!("HTTP {}", r.status()));
    }
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    v["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no id in the answer".into())
}

fn rfc3339_us(s: &str) -> Option<u64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros() as u64)
}

/// `finished_at` (µs since the epoch) of the completed jobs among `ids`,
/// read from the job list newest first, until every one is found or the
/// pages that could hold them are read.
pub(crate) async fn finished_at<'a>(
    http: &reqwest::Client,
    target: &Target,
    ids: impl ExactSizeIterator<Item = &'a String>,
) -> Result<HashMap<String, u64>> {
    let wanted: std::collections::HashSet<&str> = ids.map(String::as_str).collect();
    let mut out = HashMap::with_capacity(wanted.len());
    let mut cursor: Option<String> = None;
    for _ in 0..(wanted.len() / 200 + 3) {
        if out.len() == wanted.len() {
            break;
        }
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
            if let (true, Some(fin)) = (wanted.contains(id), rfc3339_us(fin)) {
                out.insert(id.to_string(), fin);
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
            _ => break,
        }
    }
    Ok(out)
}
