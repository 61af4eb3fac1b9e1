//! `topics`: many topics, one subscriber each (`user:*`-like). C clients,
//! client i on its own topic `user:bench-<run>-<i>`; events published over
//! `POST /v1/publish` to topics drawn at random, at R events/s. Reports the
//! publishes accepted per second, the delivery latency, and Redis's time per
//! publish script call (`INFO commandstats`, diffed over the run).
//!
//! It is the `fanout` scenario with one topic per client and a random
//! [`Pick`]; each event reaches exactly one client.

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::fanout::{self, run_id, FanoutArgs, Pick};
use crate::stack::Target;

#[derive(Debug, Clone, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Clients, each subscribed to a topic of its own.
    #[arg(long, default_value_t = 10000)]
    pub clients: usize,
    /// Events published per second, each to one random client's topic.
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Concurrent publisher connections (HTTP keep-alive each).
    #[arg(long, default_value_t = 16)]
    pub publishers: usize,
    /// Source addresses 127.0.0.1..=127.0.0.N to spread client sockets over.
    #[arg(long, default_value_t = 4)]
    pub source_ips: u8,
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,
    /// Longest wait for stragglers after the last publish, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Seed of the random topic choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub async fn run(args: TopicsArgs) -> Result<Value> {
    let mut report = fanout::run(FanoutArgs {
        target: args.target,
        clients: args.clients,
        topics: args.clients,
        rate: args.rate,
        duration: args.duration,
        publishers: args.publishers,
        source_ips: args.source_ips,
        connect_concurrency: args.connect_concurrency,
        drain: args.drain,
        pick: Pick::Random,
        topic_prefix: Some(format!("user:bench-{}-", run_id())),
        seed: args.seed,
    })
    .await?;
    report["scenario"] = "topics".into();
    Ok(report)
}
