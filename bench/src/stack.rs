//! What a scenario runs against: gateways given by URL, or a throwaway
//! stack started here (Redis, PostgreSQL, gateways, workers) through
//! relay-testkit, with the limits raised for load.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use relay_testkit::{GatewayBuilder, TestGateway, TestPostgres, TestRedis, TestWorker};

use crate::sys;

/// Where the gateways are, or how many to start.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Gateway base URL (`http://127.0.0.1:8080`); repeat for several.
    #[arg(long = "gateway")]
    pub gateways: Vec<String>,
    /// Pid of a gateway to measure (CPU, RSS); repeat. Default: found by port.
    #[arg(long = "gateway-pid")]
    pub gateway_pids: Vec<u32>,
    /// Server API key (`X-Api-Key`).
    #[arg(long, env = "RELAY_BENCH_API_KEY", default_value = relay_testkit::API_KEY)]
    pub api_key: String,
    /// Start this many gateways (and a Redis) here instead of using `--gateway`.
    #[arg(long, default_value_t = 0)]
    pub spawn: usize,
    /// Directory of relay-gateway and relay-worker (default: next to relay-bench).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Redis URL of the stack (to find its pid for CPU); set when spawning.
    #[arg(long)]
    pub redis_url: Option<String>,
}

/// A started stack; everything is killed when it is dropped.
#[derive(Default)]
pub struct Stack {
    pub redis: Option<TestRedis>,
    pub postgres: Option<TestPostgres>,
    pub gateways: Vec<TestGateway>,
    pub workers: Vec<TestWorker>,
}

/// The gateway environment for load: auth off, per-user and per-address
/// limits out of the way, quiet logs.
pub fn gateway_builder(redis: &TestRedis, pg: Option<&TestPostgres>) -> GatewayBuilder {
    let mut b = TestGateway::builder()
        .redis(redis)
        .env("RELAY_LOG", "warn")
        .env("RELAY_MAX_CONNECTIONS", "1000000")
        .env("RELAY_MAX_CONNECTIONS_PER_IP", "1000000")
        .env("RELAY_MAX_CONNECTIONS_PER_USER", "1000000")
        .env("RELAY_WS_MESSAGE_RATE", "100000")
        .env("RELAY_HTTP_RATE", "1000000")
        .env("RELAY_SEND_QUEUE", "4096")
        .env("RELAY_HEARTBEAT", "60s");
    if let Some(pg) = pg {
        b = b.postgres(pg);
    }
    b
}

impl Target {
    fn bin(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => relay_testkit::bin_path(name),
        }
    }

    /// Starts what `--spawn` asks for (plus PostgreSQL and `workers` workers
    /// when `jobs`), fills in the gateway URLs and pids, and returns the
    /// stack to keep alive.
    pub async fn prepare(
        &mut self,
        jobs: bool,
        workers: usize,
        concurrency: usize,
    ) -> Result<Stack> {
        let mut stack = Stack::default();
        if self.spawn > 0 {
            let redis = TestRedis::start();
            let pg = jobs.then(TestPostgres::start);
            for _ in 0..self.spawn {
                let gw = gateway_builder(&redis, pg.as_ref())
                    .bin(self.bin("relay-gateway"))
                    .spawn()
                    .await;
                self.gateways.push(gw.http_url(""));
                self.gateway_pids.push(gw.pid());
                stack.gateways.push(gw);
            }
            if jobs {
                let pg = pg.as_ref().expect("postgres");
                for _ in 0..workers {
                    let w = TestWorker::builder()
                        .bin(self.bin("relay-worker"))
                        .redis(&redis)
                        .postgres(pg)
                        .env("RELAY_LOG", "warn")
                        .env("RELAY_WORKER_CONCURRENCY", &concurrency.to_string())
                        .spawn()
                        .await;
                    stack.workers.push(w);
                }
            }
            self.redis_url = Some(redis.url());
            stack.redis = Some(redis);
            stack.postgres = pg;
        }
        anyhow::ensure!(!self.gateways.is_empty(), "give --gateway URL or --spawn N");
        if self.gateway_pids.is_empty() {
            self.gateway_pids = self
                .gateways
                .iter()
                .filter_map(|u| sys::url_port(u).and_then(sys::pid_listening_on))
                .collect();
        }
        Ok(stack)
    }

    /// `ws://.../v1/ws` for gateway `i` (round robin).
    pub fn ws_url(&self, i: usize) -> String {
        let base = &self.gateways[i % self.gateways.len()];
        format!(
            "{}/v1/ws",
            base.replacen("http", "ws", 1).trim_end_matches('/')
        )
    }

    pub fn http_url(&self, i: usize, path: &str) -> String {
        let base = &self.gateways[i % self.gateways.len()];
        format!("{}{path}", base.trim_end_matches('/'))
    }

    /// Meters for every gateway, and Redis when its pid can be found.
    pub fn meters(&self, stack: &Stack) -> Vec<sys::TreeMeter> {
        let mut m: Vec<_> = self
            .gateway_pids
            .iter()
            .enumerate()
            .map(|(i, pid)| sys::TreeMeter::start(format!("gateway{}", i + 1), *pid))
            .collect();
        if let Some(pid) = self
            .redis_url
            .as_deref()
            .and_then(sys::url_port)
            .and_then(sys::pid_listening_on)
        {
            m.push(sys::TreeMeter::start("redis", pid));
        }
        if let Some(pg) = &stack.postgres {
            if let Some(pid) = sys::pid_listening_on(pg.port()) {
                m.push(sys::TreeMeter::start("postgres", pid));
            }
        }
        for (i, w) in stack.workers.iter().enumerate() {
            m.push(sys::TreeMeter::start(format!("worker{}", i + 1), w.pid()));
        }
        m
    }
}

/// An HTTP client for the server API: keep-alive, many connections.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("http client")
}
