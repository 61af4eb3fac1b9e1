//! The real `relay-gateway` and `relay-worker` binaries as child processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::postgres::TestPostgres;
use crate::redis::TestRedis;
use crate::wait::free_port;
use crate::API_KEY;

/// How long a starting process may take to answer `GET /healthz` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A database URL nothing listens on: the default for processes started
/// without [`GatewayBuilder::postgres`], so a test never reaches a real
/// PostgreSQL it did not start.
pub const NO_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:1/relay";

/// The path of a workspace binary, found next to the running test executable
/// (`target/<profile>/deps/<test>` -> `target/<profile>/<name>`).
///
/// Tests inside the binary's own crate should prefer
/// `env!("CARGO_BIN_EXE_<name>")`, which also makes Cargo build it first.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build it first (cargo build -p {name})",
        path.display()
    );
    path
}

/// The accessors every process handle has, from its `proc` and
/// `instance_id` fields; `$terminate` documents what SIGTERM does to it.
macro_rules! process_handle {
    ($handle:ty, $terminate:literal $(,)?) => {
        impl $handle {
            /// `RELAY_INSTANCE_ID` of this process.
            pub fn instance_id(&self) -> &str {
                &self.instance_id
            }

            pub fn pid(&self) -> u32 {
                self.proc.pid()
            }

            /// SIGKILL, and reap the process.
            pub fn kill(&mut self) {
                self.proc.kill();
            }

            #[doc = $terminate]
            pub fn terminate(&self) {
                self.proc.signal(Signal::SIGTERM);
            }

            /// Waits up to `timeout` for the process to exit.
            pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
                self.proc.wait_exit(timeout).await
            }

            /// Everything the process wrote to stdout and stderr so far.
            pub fn log(&self) -> String {
                self.proc.log()
            }
        }
    };
}

/// A running child process whose output goes to a log file.
struct Proc {
    name: String,
    child: Option<Child>,
    log: tempfile::NamedTempFile,
    status: Option<ExitStatus>,
}

impl Proc {
    fn spawn(name: String, mut cmd: Command) -> Proc {
        let log = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .suffix(".log")
            .tempfile()
            .expect("log file");
        let out = log.reopen().expect("open log");
        let err = log.reopen().expect("open log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({:?}): {e}", cmd.get_program()));
        Proc {
            name,
            child: Some(child),
            log,
            status: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("process was reaped")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    fn signal(&self, signal: Signal) {
        if let Some(child) = &self.child {
            let _ = kill(Pid::from_raw(child.id() as i32), signal);
        }
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    self.status = Some(status);
                }
            }
        }
        self.status
    }

    fn kill(&mut self) {
        if self.status.is_none() {
            if let Some(child) = &mut self.child {
                let _ = child.kill();
                self.status = child.wait().ok();
            }
        }
    }

    async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `url` answers 200; panics with the log when the process
    /// exits first or the time runs out.
    async fn wait_healthy(&mut self, http: &reqwest::Client, url: &str) {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.try_status() {
                panic!(
                    "{} exited before it was healthy ({status}); log:\n{}",
                    self.name,
                    self.log()
                );
            }
            let answer = http.get(url).timeout(Duration::from_secs(1)).send().await;
            if answer.is_ok_and(|r| r.status() == 200) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{} did not answer {url} with 200 within {READY_TIMEOUT:?}; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- {} log -----\n{}\n----- end of {} log -----",
                self.name,
                self.log(),
                self.name
            );
        }
        self.kill();
    }
}

/// A command for one of the binaries with a clean `RELAY_*` environment.
fn base_command(bin: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("RELAY_")) {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// Sets an entry, replacing an earlier one of the same name.
fn set(env: &mut Vec<(String, String)>, key: &str, value: String) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value));
}

/// Builds a [`TestGateway`].
///
/// Defaults: `RELAY_AUTH=off`, `RELAY_API_KEYS=`[`API_KEY`], `RELAY_LOG=info`,
/// `RELAY_LISTEN=127.0.0.1:<free port>`, `RELAY_INSTANCE_ID=gw-<port>`, and
/// `RELAY_DATABASE_URL=`[`NO_DATABASE_URL`] unless a database is given.
#[derive(Debug, Clone)]
pub struct GatewayBuilder {
    bin: Option<PathBuf>,
    port: Option<u16>,
    env: Vec<(String, String)>,
}

impl GatewayBuilder {
    /// The binary to run (default: [`bin_path`]`("relay-gateway")`).
    pub fn bin(mut self, path: impl Into<PathBuf>) -> Self {
        self.bin = Some(path.into());
        self
    }

    pub fn redis(self, redis: &TestRedis) -> Self {
        self.redis_url(&redis.url())
    }

    pub fn redis_url(self, url: &str) -> Self {
        self.env("RELAY_REDIS_URL", url)
    }

    pub fn postgres(self, pg: &TestPostgres) -> Self {
        self.database_url(&pg.url())
    }

    pub fn database_url(self, url: &str) -> Self {
        self.env("RELAY_DATABASE_URL", url)
    }

    /// Listen on this port rather than a free one (to restart on the same address).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Any other environment variable (replaces a default of the same name).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        set(&mut self.env, key, value.to_string());
        self
    }

    /// The command the builder would run, with its environment but no
    /// `RELAY_LISTEN` (for tests of start-up itself: `--help`, bad config).
    pub fn command(&self) -> Command {
        base_command(&self.bin_or_default(), &self.env)
    }

    fn bin_or_default(&self) -> PathBuf {
        self.bin
            .clone()
            .unwrap_or_else(|| bin_path("relay-gateway"))
    }

    /// Starts the gateway and waits until `GET /healthz` answers 200 (20 s at most).
    pub async fn spawn(self) -> TestGateway {
        assert!(
            self.env.iter().any(|(k, _)| k == "RELAY_REDIS_URL"),
            "GatewayBuilder needs .redis(..) or .redis_url(..)"
        );
        let port = self.port.unwrap_or_else(free_port);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut env = self.env.clone();
        set(&mut env, "RELAY_LISTEN", addr.to_string());
        if !env.iter().any(|(k, _)| k == "RELAY_INSTANCE_ID") {
            set(&mut env, "RELAY_INSTANCE_ID", format!("gw-{port}"));
        }
        let instance_id = env
            .iter()
            .find(|(k, _)| k == "RELAY_INSTANCE_ID")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let cmd = base_command(&self.bin_or_default(), &env);
        let mut proc = Proc::spawn(format!("relay-gateway {addr}"), cmd);
        let http = http_client();
        proc.wait_healthy(&http, &format!("http://{addr}/healthz"))
            .await;
        TestGateway {
            proc,
            addr,
            http,
            instance_id,
        }
    }
}

/// A running `relay-gateway`; killed (SIGKILL) when dropped, and its log
/// printed if the test is failing.
pub struct TestGateway {
    proc: Proc,
    addr: SocketAddr,
    http: reqwest::Client,
    instance_id: String,
}

impl TestGateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            bin: None,
            port: None,
            env: vec![
                ("RELAY_AUTH".into(), "off".into()),
                ("RELAY_API_KEYS".into(), API_KEY.into()),
                ("RELAY_LOG".into(), "info".into()),
                ("RELAY_DATABASE_URL".into(), NO_DATABASE_URL.into()),
            ],
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://ADDR{path}`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// An HTTP client for this test (keeps connections to this gateway alive).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `GET path`, answered within 10 s.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.http_url(path))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The status of `GET path`, or `None` when the request fails (refused, timed out).
    pub async fn status_of(&self, path: &str) -> Option<u16> {
        let r = self
            .http
            .get(self.http_url(path))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        r.ok().map(|r| r.status().as_u16())
    }
}

process_handle!(TestGateway, "SIGTERM: the gateway drains and exits.");

/// Builds a [`TestWorker`].
///
/// Defaults: `RELAY_AUTH=off`, `RELAY_LOG=info`,
/// `RELAY_METRICS_LISTEN=127.0.0.1:<free port>`, `RELAY_INSTANCE_ID=worker-<port>`,
/// and `RELAY_DATABASE_URL=`[`NO_DATABASE_URL`] unless a database is given.
#[derive(Debug, Clone)]
pub struct WorkerBuilder {
    bin: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl WorkerBuilder {
    /// The binary to run (default: [`bin_path`]`("relay-worker")`).
    pub fn bin(mut self, path: impl Into<PathBuf>) -> Self {
        self.bin = Some(path.into());
        self
    }

    pub fn redis(self, redis: &TestRedis) -> Self {
        self.env("RELAY_REDIS_URL", &redis.url())
    }

    pub fn postgres(self, pg: &TestPostgres) -> Self {
        self.env("RELAY_DATABASE_URL", &pg.url())
    }

    /// Any other environment variable (replaces a default of the same name).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        set(&mut self.env, key, value.to_string());
        self
    }

    /// The command the builder would run, with its environment.
    pub fn command(&self) -> Command {
        base_command(&self.bin_or_default(), &self.env)
    }

    fn bin_or_default(&self) -> PathBuf {
        self.bin.clone().unwrap_or_else(|| bin_path("relay-worker"))
    }

    /// Starts the worker and waits until its `GET /healthz` answers 200 (20 s at most).
    pub async fn spawn(self) -> TestWorker {
        assert!(
            self.env.iter().any(|(k, _)| k == "RELAY_REDIS_URL"),
            "WorkerBuilder needs .redis(..)"
        );
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut env = self.env.clone();
        set(&mut env, "RELAY_METRICS_LISTEN", addr.to_string());
        if !env.iter().any(|(k, _)| k == "RELAY_INSTANCE_ID") {
            set(&mut env, "RELAY_INSTANCE_ID", format!("worker-{port}"));
        }
        let instance_id = env
            .iter()
            .find(|(k, _)| k == "RELAY_INSTANCE_ID")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let cmd = base_command(&self.bin_or_default(), &env);
        let mut proc = Proc::spawn(format!("relay-worker {addr}"), cmd);
        let http = http_client();
        proc.wait_healthy(&http, &format!("http://{addr}/healthz"))
            .await;
        TestWorker {
            proc,
            metrics_addr: addr,
            http,
            instance_id,
        }
    }
}

/// A running `relay-worker`; killed (SIGKILL) when dropped, and its log
/// printed if the test is failing.
pub struct TestWorker {
    proc: Proc,
    metrics_addr: SocketAddr,
    http: reqwest::Client,
    instance_id: String,
}

impl TestWorker {
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder {
            bin: None,
            env: vec![
                ("RELAY_AUTH".into(), "off".into()),
                ("RELAY_LOG".into(), "info".into()),
                ("RELAY_DATABASE_URL".into(), NO_DATABASE_URL.into()),
            ],
        }
    }

    /// Where the worker serves `/healthz` and `/metrics`.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// `http://METRICS_ADDR{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.metrics_addr)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

process_handle!(
    TestWorker,
    "SIGTERM: the worker stops taking jobs and finishes or releases the running ones."
);
