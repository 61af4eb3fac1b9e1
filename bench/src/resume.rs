//! `resume`: C clients subscribed; they all disconnect, M events are
//! published, then they all reconnect at once and resubscribe with `since`
//! and `epoch`. Measures the time until every client has caught up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, now_us, SeqSet, Subscribed};
use crate::fanout::{run_id, source_ip};
use crate::report::{histogram, latency_json};
use crate::stack::{http_client, Target};

#[derive(Debug, Clone, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(long, default_value_t = 10000)]
    pub clients: usize,
    /// Events published while the clients are away (at most the history size).
    #[arg(long, default_value_t = 100)]
    pub missed: u64,
    #[arg(long, default_value_t = 1)]
    pub source_ips: u8,
    /// Connections opened at once for the first subscription (the resume is all at once).
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,
    /// Longest wait for everyone to catch up, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
}

async fn publish(http: &reqwest::Client, target: &Target, topic: &str, seq: u64) -> Result<()> {
    let r = http
        .post(target.http_url(seq as usize, "/v1/publish"))
        .header("x-api-key", &target.api_key)
        .json(&json!({"topic": topic, "type": "bench", "data": {"t": now_us(), "seq": seq}}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("publish: HTTP {}", r.status());
    }
    Ok(())
}

pub async fn run(mut args: ResumeArgs) -> Result<Value> {
    anyhow::ensure!(
        !args.target.is_bare(),
        "bare servers keep no history to resume from"
    );
    let stack = args.target.prepare(false, 0, 0).await?;
    let target = Arc::new(args.target.clone());
    let topic = format!("bench.resume.{}", run_id());
    let http = http_client();
    // One event before anyone subscribes, so the topic has an epoch and a position.
    publish(&http, &target, &topic, u64::MAX / 2).await?;

    // Phase 1: subscribe everyone, keep (position, epoch), disconnect.
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let mut first = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let (url, topic, gate) = (target.ws_url(i), topic.clone(), gate.clone());
        let source = source_ip(i, args.source_ips);
        first.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            let mut ws = client::connect(&url, source).await?;
            let sub = client::subscribe(&mut ws, &topic, None, |_| {}).await?;
            anyhow::Ok((ws, sub))
        }));
    }
    let mut subs: Vec<Subscribed> = Vec::with_capacity(args.clients);
    let mut sockets = Vec::with_capacity(args.clients);
    for h in first {
        let (ws, sub) = h.await??;
        sockets.push(ws);
        subs.push(sub);
    }
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }

    // Phase 2: publish what they will miss.
    for seq in 0..args.missed {
        publish(&http, &target, &topic, seq).await?;
    }

    // Phase 3: everyone back at once, resuming.
    let accounting = args.target.account(&stack);
    let caught_up = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let timeout = Duration::from_secs_f64(args.timeout);
    let missed = args.missed;
    let mut back = Vec::with_capacity(args.clients);
    for (i, sub) in subs.into_iter().enumerate() {
        let (url, topic, caught_up) = (target.ws_url(i), topic.clone(), caught_up.clone());
        let retries = retries.clone();
        let source = source_ip(i, args.source_ips);
        back.push(tokio::spawn(async move {
            let mut seen = SeqSet::new(missed);
            let run = async {
                let mut ws = client::connect(&url, source).await?;
                let on_event = |text: &str, seen: &mut SeqSet| {
                    if let Some((_, seq, _)) = client::parse_event(text) {
                        seen.insert(seq);
                    }
                };
                // A retryable error (UNAVAILABLE under the stampede) is
                // retried on the same connection after a spread-out pause,
                // as a well-behaved client would.
                let mut attempt = 0u64;
                let reply = loop {
                    let resume = Some((sub.position.as_str(), sub.epoch.as_str()));
                    match client::subscribe(&mut ws, &topic, resume, |t| on_event(t, &mut seen))
                        .await
                    {
                        Ok(reply) => break reply,
                        Err(e) if e.to_string().contains(r#""retryable":true"#) && attempt < 20 => {
                            attempt += 1;
                            retries.fetch_add(1, Ordering::Relaxed);
                            let spread = (i as u64 * 7919 + attempt * 104_729) % 500;
                            tokio::time::sleep(Duration::from_millis(
                                200 * attempt.min(5) + spread,
                            ))
                            .await;
                        }
                        Err(e) => return Err(e),
                    }
                };
                while seen.distinct < missed {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => on_event(t.as_str(), &mut seen),
                        Some(Ok(_)) => {}
                        _ => bail!("closed before caught up"),
                    }
                }
                anyhow::Ok((reply, started.elapsed(), ws))
            };
            let out = tokio::time::timeout(timeout, run).await;
            let out = match out {
                Ok(Ok((reply, took, ws))) => {
                    caught_up.fetch_add(1, Ordering::Relaxed);
                    Ok((reply, took, ws))
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(anyhow::anyhow!("timed out")),
            };
            (out, seen)
        }));
    }
    let mut took = histogram();
    let mut replayed = 0u64;
    let mut not_recovered = 0u64;
    let mut lost = 0u64;
    let mut duplicates = 0u64;
    let mut failures = 0u64;
    let mut keep = Vec::new();
    for h in back {
        let (out, seen) = h.await?;
        lost += missed.saturating_sub(seen.distinct);
        duplicates += seen.duplicates + seen.unexpected;
        match out {
            Ok((reply, t, ws)) => {
                took.saturating_record(t.as_micros() as u64);
                replayed += reply.replayed;
                not_recovered += u64::from(!reply.recovered);
                keep.push(ws);
            }
            Err(e) => {
                if failures < 5 {
                    eprintln!("resume: {e:#}");
                }
                failures += 1;
            }
        }
    }
    let window = accounting.finish();
    let all_secs = if failures == 0 {
        took.max() as f64 / 1e6
    } else {
        f64::NAN
    };
    drop(keep);
    drop(stack);
    Ok(json!({
        "scenario": "resume",
        "clients": args.clients,
        "missed_per_client": missed,
        "caught_up": caught_up.load(Ordering::Relaxed),
        "failures": failures,
        "subscribe_retries": retries.load(Ordering::Relaxed),
        "all_caught_up_secs": (all_secs * 1000.0).round() / 1000.0,
        "time_to_catch_up": latency_json(&took),
        "replayed": replayed,
        "not_recovered": not_recovered,
        "lost": lost,
        "duplicates_or_unexpected": duplicates,
        "processes": window.processes_json(),
        "cost": window.cost_json(&[("replayed event", replayed)]),
    }))
}
