//! `connections`: hold C idle subscribed connections and report the
//! gateways' RSS per connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Semaphore};

use crate::client;
use crate::fanout::{run_id, source_ip};
use crate::stack::Target;
use crate::sys;

#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Idle connections to hold (this process may open about 20,000 sockets).
    #[arg(long, default_value_t = 10000)]
    pub clients: usize,
    /// Topics the clients subscribe to (client i to topic i mod N).
    #[arg(long, default_value_t = 100)]
    pub topics: usize,
    /// Source addresses 127.0.0.1..=127.0.0.N to spread client sockets over.
    #[arg(long, default_value_t = 1)]
    pub source_ips: u8,
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,
    /// Seconds to hold the connections once all are open before measuring.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
}

pub async fn run(mut args: ConnectionsArgs) -> Result<Value> {
    let stack = args.target.prepare(false, 0, 0).await?;
    let id = run_id();
    // Warm up each gateway with one connection, so one-off allocations
    // (the subscriber, the first topic) are not counted per connection.
    let mut warm = Vec::new();
    for g in 0..args.target.gateways.len() {
        let mut ws = client::connect(&args.target.ws_url(g), None).await?;
        client::subscribe(&mut ws, &format!("bench.conn.{id}.warm"), None, |_| {}).await?;
        warm.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<u64> = args
        .target
        .gateway_pids
        .iter()
        .map(|p| sys::rss_kib(*p).unwrap_or(0))
        .collect();

    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let ready = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut holds = Vec::with_capacity(args.clients);
    let mut handles = Vec::with_capacity(args.clients);
    let started = Instant::now();
    for i in 0..args.clients {
        let url = args.target.ws_url(i);
        let topic = format!("bench.conn.{id}.{}", i % args.topics.max(1));
        let source = source_ip(i, args.source_ips);
        let (gate, ready, failed) = (gate.clone(), ready.clone(), failed.clone());
        let (release_tx, release_rx) = oneshot::channel::<()>();
        holds.push(release_tx);
        handles.push(tokio::spawn(async move {
            let permit = gate.acquire().await;
            let ws = async {
                let mut ws = client::connect(&url, source).await?;
                client::subscribe(&mut ws, &topic, None, |_| {}).await?;
                anyhow::Ok(ws)
            }
            .await;
            drop(permit);
            match ws {
                Ok(ws) => {
                    ready.fetch_add(1, Ordering::Relaxed);
                    let _ = release_rx.await;
                    drop(ws);
                }
                Err(e) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("client {i}: {e:#}");
                    }
                }
            }
        }));
    }
    let total = args.clients as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < total
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    // What holding them idle costs: CPU over the settle time.
    let accounting = args.target.account(&stack);
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let window = accounting.finish();
    let connected = ready.load(Ordering::Relaxed);
    let gateways: Vec<Value> = args
        .target
        .gateway_pids
        .iter()
        .zip(&before)
        .enumerate()
        .map(|(g, (pid, before))| {
            let after = sys::rss_kib(*pid).unwrap_or(0);
            let n = args.target.gateways.len();
            let here = (0..args.clients).filter(|i| i % n == g).count() as u64;
            let here = (here as f64 * connected as f64 / total.max(1) as f64).round() as u64;
            json!({
                "pid": pid,
                "rss_before_mib": (*before as f64 / 1024.0 * 10.0).round() / 10.0,
                "rss_after_mib": (after as f64 / 1024.0 * 10.0).round() / 10.0,
                "connections": here,
                "rss_per_connection_kib":
                    ((after.saturating_sub(*before)) as f64 / here.max(1) as f64 * 100.0).round() / 100.0,
            })
        })
        .collect();
    let self_rss = sys::rss_kib(std::process::id()).unwrap_or(0);
    for h in holds {
        let _ = h.send(());
    }
    for h in handles {
        let _ = h.await;
    }
    drop(warm);
    drop(stack);
    // Connection-seconds held (the window is the settle time, give or take
    // the reads of /proc).
    let idle_secs = (connected as f64 * args.settle).round() as u64;
    Ok(json!({
        "scenario": "connections",
        "peer": if args.target.is_bare() { "bare" } else { "relay" },
        "clients": args.clients,
        "connected": connected,
        "connect_failures": failed.load(Ordering::Relaxed),
        "connect_secs": (connect_secs * 100.0).round() / 100.0,
        "connects_per_s": (connected as f64 / connect_secs.max(0.001)).round(),
        "topics": args.topics,
        "bare_queue": args.target.is_bare().then_some(args.target.bare_queue),
        "gateways": gateways,
        "bench_rss_mib": (self_rss as f64 / 1024.0 * 10.0).round() / 10.0,
        "processes": window.processes_json(),
        "cost": window.cost_json(&[("idle connection-second", idle_secs)]),
    }))
}
