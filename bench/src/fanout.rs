//! `fanout`: C clients over G gateways on N topics, a publisher at R
//! events/s through `POST /v1/publish`, for D seconds. Each event goes to
//! one topic, chosen round robin or at random ([`Plan`]); the `topics`
//! scenario is this one with a topic per client.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, now_us, SeqSet};
use crate::collect::Collector;
use crate::redis_stats::RedisWindow;
use crate::report::{latency_json, round};
use crate::stack::{http_client, Target};

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub target: Target,
    /// WebSocket clients, spread round robin over the gateways.
    #[arg(long, default_value_t = 2000)]
    pub clients: usize,
    /// Topics; client i subscribes to topic i mod N, event k goes to topic k mod N.
    #[arg(long, default_value_t = 1)]
    pub topics: usize,
    /// Events published per second (all topics together).
    #[arg(long, default_value_t = 125)]
    pub rate: u64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Concurrent publisher connections (HTTP keep-alive each).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Source addresses 127.0.0.1..=127.0.0.N to spread client sockets over.
    #[arg(long, default_value_t = 1)]
    pub source_ips: u8,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,
    /// Longest wait for stragglers after the last publish, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// How each event's topic is chosen.
    #[arg(long, value_enum, default_value_t = Pick::RoundRobin)]
    pub pick: Pick,
    /// Topic names are this prefix and the topic's number (default `bench.fanout.<run>.`).
    #[arg(long)]
    pub topic_prefix: Option<String>,
    /// Seed of `--pick random`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// How an event's topic is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Pick {
    /// Event k to topic k mod N.
    #[default]
    RoundRobin,
    /// Each event to a topic drawn at random (seeded, so runs repeat).
    Random,
}

/// Every event's topic and its sequence number within that topic, fixed
/// before the run, so each client knows how many events its topic gets.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `(topic, seq)` of event k.
    pub events: Vec<(u32, u32)>,
    /// Events each topic gets.
    pub per_topic: Vec<u64>,
}

impl Plan {
    pub fn new(total: u64, topics: usize, pick: Pick, seed: u64) -> Plan {
        let topics = topics.max(1);
        let mut per_topic = vec![0u64; topics];
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let events = (0..total)
            .map(|k| {
                let t = match pick {
                    Pick::RoundRobin => (k % topics as u64) as usize,
                    Pick::Random => rng.random_range(0..topics),
                };
                let seq = per_topic[t];
                per_topic[t] += 1;
                (t as u32, seq as u32)
            })
            .collect();
        Plan { events, per_topic }
    }
}

/// The source address of client `i` when spreading over `n` loopback addresses.
pub fn source_ip(i: usize, n: u8) -> Option<IpAddr> {
    (n > 1).then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % n as usize) as u8)))
}

/// A unique prefix for this run's topics, so runs never share history.
pub fn run_id() -> String {
    format!("{:x}", now_us())
}

struct ClientOutcome {
    topic: usize,
    seen: Option<SeqSet>,
}

pub async fn run(mut args: FanoutArgs) -> Result<Value> {
    let stack = args.target.prepare(false, 0, 0).await?;
    let target = Arc::new(args.target.clone());
    args.topics = args.topics.max(1);
    let topics: Vec<String> = {
        let prefix = args
            .topic_prefix
            .clone()
            .unwrap_or_else(|| format!("bench.fanout.{}.", run_id()));
        (0..args.topics).map(|t| format!("{prefix}{t}")).collect()
    };
    let total = (args.rate as f64 * args.duration).round() as u64;
    let plan = Arc::new(Plan::new(total, args.topics, args.pick, args.seed));

    // Clients: connect, subscribe, then count events until told to stop.
    let collector = Arc::new(Collector::default());
    let delivered = Arc::new(AtomicU64::new(0));
    let last_delivery_us = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicU64::new(0));
    let topic_ready: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.topics).map(|_| AtomicU64::new(0)).collect());
    let failed = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let connect_started = Instant::now();
    let mut handles = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let topic_ix = i % args.topics;
        let topic = topics[topic_ix].clone();
        let url = target.ws_url(i);
        let source = source_ip(i, args.source_ips);
        let topic_ready = topic_ready.clone();
        let expect = plan.per_topic[topic_ix];
        let (collector, delivered, last, ready, failed, gate) = (
            collector.clone(),
            delivered.clone(),
            last_delivery_us.clone(),
            ready.clone(),
            failed.clone(),
            gate.clone(),
        );
        let mut stop = stop_rx.clone();
        handles.push(tokio::spawn(async move {
            let mut rec = collector.recorder(i);
            let mut seen = SeqSet::new(expect);
            let mut on_event = |text: &str, seen: &mut SeqSet| {
                if let Some((t, seq)) = client::parse_payload(text) {
                    let now = now_us();
                    rec.record(now.saturating_sub(t));
                    seen.insert(seq);
                    delivered.fetch_add(1, Ordering::Relaxed);
                    last.store(now, Ordering::Relaxed);
                }
            };
            let permit = gate.acquire().await;
            let ws = async {
                let mut ws = client::connect(&url, source).await?;
                client::subscribe(&mut ws, &topic, None, |t| on_event(t, &mut seen)).await?;
                anyhow::Ok(ws)
            }
            .await;
            drop(permit);
            let mut ws = match ws {
                Ok(ws) => ws,
                Err(e) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("client {i}: {e:#}");
                    }
                    return ClientOutcome {
                        topic: topic_ix,
                        seen: None,
                    };
                }
            };
            ready.fetch_add(1, Ordering::Relaxed);
            topic_ready[topic_ix].fetch_add(1, Ordering::Relaxed);
            // One stop future for the whole run: a new one per frame would
            // register with the shared watch channel on every event.
            let stopped = stop.changed();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    msg = ws.next() => match msg {
                        Some(Ok(Message::Text(text))) => on_event(text.as_str(), &mut seen),
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    }
                }
            }
            ClientOutcome {
                topic: topic_ix,
                seen: Some(seen),
            }
        }));
    }
    let clients = args.clients as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < clients
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let connected = ready.load(Ordering::Relaxed);

    // Publish at the given rate from several keep-alive connections.
    let redis = RedisWindow::start(args.target.redis_url.as_deref()).await;
    let accounting = args.target.account(&stack);
    let published: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.topics).map(|_| AtomicU64::new(0)).collect());
    let publish_errors = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let behind = Arc::new(AtomicBool::new(false));
    // The publishers get their own runtime on their own thread, so the
    // thousands of client tasks cannot delay the publishing schedule.
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let publish_started_us = now_us() + 50_000;
    let publishers = {
        let (published, publish_errors, next, behind, target, topics, plan) = (
            published.clone(),
            publish_errors.clone(),
            next.clone(),
            behind.clone(),
            target.clone(),
            topics.clone(),
            plan.clone(),
        );
        let (n, rate, key) = (
            args.publishers.max(1),
            args.rate.max(1),
            args.target.api_key.clone(),
        );
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("publisher runtime");
            rt.block_on(async move {
                let http = http_client();
                let mut pubs = Vec::new();
                for _ in 0..n {
                    let (published, errors, next, behind, http, target, topics, key, plan) = (
                        published.clone(),
                        publish_errors.clone(),
                        next.clone(),
                        behind.clone(),
                        http.clone(),
                        target.clone(),
                        topics.clone(),
                        key.clone(),
                        plan.clone(),
                    );
                    pubs.push(tokio::spawn(async move {
                        let p = Publisher {
                            rate,
                            start,
                            next: &next,
                            behind: &behind,
                            http: &http,
                            target: &target,
                            topics: &topics,
                            plan: &plan,
                            key: &key,
                            published: &published,
                            errors: &errors,
                        };
                        p.run().await
                    }));
                }
                for p in pubs {
                    let _ = p.await;
                }
            })
        })
    };
    tokio::task::spawn_blocking(move || publishers.join())
        .await?
        .map_err(|_| anyhow::anyhow!("publisher thread panicked"))?;
    let publish_secs = start.elapsed().as_secs_f64();

    // Wait for every expected delivery, or for the drain time to run out.
    let expected_connected: u64 = (0..args.topics)
        .map(|t| published[t].load(Ordering::Relaxed) * topic_ready[t].load(Ordering::Relaxed))
        .sum();
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain);
    while delivered.load(Ordering::Relaxed) < expected_connected && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let window = accounting.finish();
    let redis = redis.finish().await;
    let _ = stop_tx.send(true);

    let mut lost = 0u64;
    let mut duplicates = 0u64;
    let mut lossy_clients = 0u64;
    for h in handles {
        let out = h.await?;
        if let Some(seen) = out.seen {
            let expect = published[out.topic].load(Ordering::Relaxed);
            let missing = expect.saturating_sub(seen.distinct);
            lost += missing;
            lossy_clients += u64::from(missing > 0);
            duplicates += seen.duplicates;
        }
    }
    let delivered = delivered.load(Ordering::Relaxed);
    let window_us = last_delivery_us
        .load(Ordering::Relaxed)
        .saturating_sub(publish_started_us)
        .max(1);
    let published_total: u64 = published.iter().map(|p| p.load(Ordering::Relaxed)).sum();
    let report = json!({
        "scenario": "fanout",
        "peer": if args.target.is_bare() { "bare" } else { "relay" },
        "gateways": args.target.gateways.len(),
        "clients": args.clients,
        "connected": connected,
        "connect_failures": failed.load(Ordering::Relaxed),
        "connect_secs": (connect_secs * 100.0).round() / 100.0,
        "topics": args.topics,
        "pick": format!("{:?}", args.pick).to_lowercase(),
        "rate": args.rate,
        "duration_s": args.duration,
        "published": published_total,
        "publish_errors": publish_errors.load(Ordering::Relaxed),
        "publisher_fell_behind": behind.load(Ordering::Relaxed),
        "publish_secs": (publish_secs * 100.0).round() / 100.0,
        "publishes_per_s": round(published_total as f64 / publish_secs.max(0.001), 0),
        "delivered": delivered,
        "expected": expected_connected,
        "deliveries_per_s": (delivered as f64 / (window_us as f64 / 1e6)).round(),
        "lost": lost,
        "clients_with_losses": lossy_clients,
        "duplicates": duplicates,
        "latency": latency_json(&collector.merged()),
        "processes": window.processes_json(),
        "cost": window.cost_json(&[("delivery", delivered), ("publish", published_total)]),
        "redis": redis,
    });
    drop(stack);
    Ok(report)
}

/// One publisher: takes the next event number, waits for its due time,
/// publishes it (to every server when the target asks for that).
struct Publisher<'a> {
    rate: u64,
    start: tokio::time::Instant,
    next: &'a AtomicU64,
    behind: &'a AtomicBool,
    http: &'a reqwest::Client,
    target: &'a Target,
    topics: &'a [String],
    plan: &'a Plan,
    key: &'a str,
    published: &'a [AtomicU64],
    errors: &'a AtomicU64,
}

impl Publisher<'_> {
    async fn run(&self) {
        let total = self.plan.events.len() as u64;
        loop {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            if k >= total {
                break;
            }
            let due = self.start + Duration::from_nanos(k * 1_000_000_000 / self.rate);
            if tokio::time::Instant::now() > due + Duration::from_millis(100) {
                self.behind.store(true, Ordering::Relaxed);
            }
            tokio::time::sleep_until(due).await;
            let (t, seq) = self.plan.events[k as usize];
            let body = json!({
                "topic": self.topics[t as usize],
                "type": "bench",
                "data": {"t": now_us(), "seq": seq},
            });
            let servers: Vec<usize> = if self.target.publish_to_all {
                (0..self.target.gateways.len()).collect()
            } else {
                vec![k as usize]
            };
            let sent = futures_util::future::join_all(servers.into_iter().map(|g| {
                self.http
                    .post(self.target.http_url(g, "/v1/publish"))
                    .header("x-api-key", self.key)
                    .json(&body)
                    .send()
            }))
            .await;
            let ok = sent
                .iter()
                .all(|r| r.as_ref().is_ok_and(|r| r.status().is_success()));
            if ok {
                self.published[t as usize].fetch_add(1, Ordering::Relaxed);
            } else if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("publish {k} failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_numbers_each_topic_densely() {
        for pick in [Pick::RoundRobin, Pick::Random] {
            let plan = Plan::new(1000, 7, pick, 3);
            assert_eq!(plan.per_topic.iter().sum::<u64>(), 1000);
            let mut next = [0u32; 7];
            for &(t, seq) in &plan.events {
                assert_eq!(seq, next[t as usize], "{pick:?}");
                next[t as usize] += 1;
            }
        }
        let rr = Plan::new(10, 3, Pick::RoundRobin, 0);
        assert_eq!(rr.events[4], (1, 1));
        // Seeded: the same draw every run, and not round robin.
        let a = Plan::new(100, 50, Pick::Random, 9);
        assert_eq!(a.events, Plan::new(100, 50, Pick::Random, 9).events);
        assert_ne!(a.events, Plan::new(100, 50, Pick::RoundRobin, 9).events);
    }
}
