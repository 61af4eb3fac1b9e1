//! What a scenario runs against: gateways given by URL, a throwaway stack
//! started here (Redis, PostgreSQL, gateways, workers) through
//! relay-testkit with the limits raised for load, or bare broadcast servers
//! (the peer in [`crate::bare`]) started here.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use relay_testkit::{GatewayBuilder, TestGateway, TestPostgres, TestRedis, TestWorker};

use crate::cost::{role, Accounting, Proc};
use crate::sys;

/// Where the gateways are, or how many to start.
#[derive(Debug, Clone, Default, Args)]
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
    /// Redis URL of the stack (its pid for CPU, `INFO commandstats`); set when spawning.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Start this many bare broadcast servers (the ceiling peer, no Redis)
    /// instead of Relay gateways; publishes then go to every server.
    #[arg(long, default_value_t = 0)]
    pub bare: usize,
    /// Frames each topic's ring holds in a bare server.
    #[arg(long, default_value_t = crate::bare::BareConfig::default().queue)]
    pub bare_queue: usize,
    /// Send every publish to every gateway (servers that do not share
    /// events, such as bare servers given with `--gateway`).
    #[arg(long)]
    pub publish_to_all: bool,
}

/// How long a bare server may take to print its address.
const BARE_START_TIMEOUT: Duration = Duration::from_secs(20);

/// A bare broadcast server started here; killed when dropped.
pub struct BareProcess {
    child: Child,
    pub url: String,
}

impl BareProcess {
    /// Starts `bin` on a free loopback port and waits for its address.
    pub fn spawn(bin: &std::path::Path, queue: usize) -> Result<BareProcess> {
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--queue", &queue.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let stdout = child.stdout.take().context("bare server stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut bare = BareProcess {
            child,
            url: String::new(),
        };
        let line = rx
            .recv_timeout(BARE_START_TIMEOUT)
            .context("bare server did not print its address")?;
        match line.trim().strip_prefix("listening on ") {
            Some(addr) => bare.url = format!("http://{addr}"),
            None => bail!("bare server said {line:?}"),
        }
        Ok(bare)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BareProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A started stack; everything is killed when it is dropped.
#[derive(Default)]
pub struct Stack {
    pub redis: Option<TestRedis>,
    pub postgres: Option<TestPostgres>,
    pub gateways: Vec<TestGateway>,
    pub workers: Vec<TestWorker>,
    pub bare: Vec<BareProcess>,
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
    /// A target that starts `gateways` Relay gateways (and a Redis) itself.
    pub fn spawning(gateways: usize) -> Target {
        Target {
            api_key: relay_testkit::API_KEY.to_string(),
            spawn: gateways,
            bare_queue: crate::bare::BareConfig::default().queue,
            ..Target::default()
        }
    }

    /// A target that starts `servers` bare broadcast servers itself.
    pub fn spawning_bare(servers: usize) -> Target {
        Target {
            bare: servers,
            ..Target::spawning(0)
        }
    }

    /// Whether this target's servers are bare broadcast servers.
    pub fn is_bare(&self) -> bool {
        self.bare > 0
    }

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
        if self.bare > 0 {
            anyhow::ensure!(!jobs, "bare servers have no jobs");
            let bin = self.bin("bare-broadcast");
            for _ in 0..self.bare {
                let b = BareProcess::spawn(&bin, self.bare_queue)?;
                wait_healthy(&b.url).await?;
                self.gateways.push(b.url.clone());
                self.gateway_pids.push(b.pid());
                stack.bare.push(b);
            }
            self.publish_to_all = self.bare > 1;
        }
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

    /// The processes of the run: every gateway (or bare server), Redis and
    /// PostgreSQL when their pids can be found, the workers.
    pub fn processes(&self, stack: &Stack) -> Vec<Proc> {
        let (name, r) = if self.is_bare() {
            ("bare", role::SERVER)
        } else {
            ("gateway", role::GATEWAY)
        };
        let mut m: Vec<_> = self
            .gateway_pids
            .iter()
            .enumerate()
            .map(|(i, pid)| Proc::tree(format!("{name}{}", i + 1), r, *pid))
            .collect();
        if let Some(pid) = self
            .redis_url
            .as_deref()
            .and_then(sys::url_port)
            .and_then(sys::pid_listening_on)
        {
            m.push(Proc::tree("redis", role::REDIS, pid));
        }
        if let Some(pg) = &stack.postgres {
            if let Some(pid) = sys::pid_listening_on(pg.port()) {
                m.push(Proc::tree("postgres", role::POSTGRES, pid));
            }
        }
        for (i, w) in stack.workers.iter().enumerate() {
            m.push(Proc::tree(
                format!("worker{}", i + 1),
                role::WORKER,
                w.pid(),
            ));
        }
        m
    }

    /// Starts measuring the CPU of [`processes`](Self::processes) and of this
    /// load generator.
    pub fn account(&self, stack: &Stack) -> Accounting {
        Accounting::start(self.processes(stack))
    }
}

/// Waits (bounded) for `GET {base}/healthz` to answer 200.
async fn wait_healthy(base: &str) -> Result<()> {
    let http = http_client();
    let deadline = Instant::now() + BARE_START_TIMEOUT;
    loop {
        let ok = http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{base} did not become healthy");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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
