//! A throwaway Redis Cluster: three masters (optionally with replicas), each
//! a real `redis-server` in its own temporary directory on loopback.

use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis::{ping, RedisTarget};

/// How long a cluster may take to form (or to heal after a node restart).
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one node may take to answer `PING` after it is spawned.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a master may be unreachable before the others mark it failed
/// (`cluster-node-timeout`); short, so a fail-over happens within seconds.
pub const NODE_TIMEOUT_MS: u64 = 2000;

/// Masters in every cluster started here (the fewest Redis Cluster accepts).
pub const MASTERS: usize = 3;

/// The Redis Cluster port offset of the cluster bus (`port + 10000`).
const BUS_OFFSET: u16 = 10_000;

/// Client ports are drawn from this range, below the kernel's usual
/// ephemeral range (32768 and up) together with their bus ports, so an
/// outgoing connection never takes a port a node is about to bind.
const PORT_RANGE: std::ops::RangeInclusive<u16> = 10_000..=22_000;

/// A real Redis Cluster without persistence.
///
/// Every node runs with `cluster-enabled yes`, no RDB and no AOF; the slots
/// are spread over [`MASTERS`] masters by `redis-cli --cluster create`. The
/// cluster is ready (every node reports `cluster_state:ok` and knows every
/// other) when [`start`](Self::start) returns. All nodes are killed (SIGKILL)
/// when it is dropped, and their logs printed if the test is failing.
pub struct TestRedisCluster {
    nodes: Vec<Node>,
}

struct Node {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl TestRedisCluster {
    /// Starts three masters and no replicas.
    pub fn start() -> TestRedisCluster {
        Self::start_with_replicas(0)
    }

    /// Starts three masters with `replicas` replicas each.
    pub fn start_with_replicas(replicas: usize) -> TestRedisCluster {
        let mut last = String::new();
        // Ports are only known free when checked; another process may take
        // one before the node binds it: start over on fresh ports.
        for _ in 0..3 {
            match Self::try_start(MASTERS * (1 + replicas), replicas) {
                Ok(cluster) => return cluster,
                Err(e) => last = e,
            }
        }
        panic!("redis cluster did not start: {last}");
    }

    fn try_start(n: usize, replicas: usize) -> Result<TestRedisCluster, String> {
        let mut cluster = TestRedisCluster { nodes: Vec::new() };
        for port in cluster_ports(n) {
            let dir = tempfile::Builder::new()
                .prefix("relay-redis-cluster-")
                .tempdir()
                .map_err(|e| format!("temp dir: {e}"))?;
            let mut node = Node {
                port,
                dir,
                child: None,
            };
            node.spawn()
                .map_err(|e| format!("node {port}: {e}; log:\n{}", node.log()))?;
            cluster.nodes.push(node);
        }
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run redis-cli --cluster create: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        cluster.wait_healthy()?;
        Ok(cluster)
    }

    /// `redis-cluster://127.0.0.1:P1?node=127.0.0.1:P2&node=...`: every
    /// node, in the form `RELAY_REDIS_URL` accepts.
    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.nodes[0].port);
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            url.push(if i == 1 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", n.port));
        }
        url
    }

    /// Every node's client port, in the order they were started.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Sends one command to node `i` with `redis-cli` and returns its output.
    pub fn cli_on(&self, i: usize, args: &[&str]) -> String {
        cli(self.nodes[i].port, args)
    }

    /// Sends one command to the cluster with `redis-cli -c` (following
    /// `MOVED` redirections) and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let port = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .map_or(self.nodes[0].port, |n| n.port);
        let out = Command::new("redis-cli")
            .args(["-c", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot(&self, key: &str) -> u16 {
        let out = self.cli(&["CLUSTER", "KEYSLOT", key]);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT {key}: {out:?}"))
    }

    /// The index of the node that serves `slot` as a master now.
    pub fn master_of(&self, slot: u16) -> usize {
        let slots = self.cli(&["CLUSTER", "SLOTS"]);
        // redis-cli prints the reply flattened, one element per line:
        // start, end, then the master's ip, port, id (then replicas).
        let lines: Vec<&str> = slots.lines().map(str::trim).collect();
        let mut i = 0;
        while i + 3 < lines.len() {
            if let (Ok(start), Ok(end)) = (lines[i].parse::<u16>(), lines[i + 1].parse::<u16>()) {
                if lines[i + 2] == "127.0.0.1" && (start..=end).contains(&slot) {
                    let port: u16 = lines[i + 3].parse().expect("port in CLUSTER SLOTS");
                    return self
                        .nodes
                        .iter()
                        .position(|n| n.port == port)
                        .expect("a node of this cluster");
                }
            }
            i += 1;
        }
        panic!("no master serves slot {slot}: {slots}");
    }

    /// Whether node `i` runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills node `i` with SIGKILL (it loses its data, keeps its slots).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Kills node `i` if it runs, starts it again (empty, on the same port,
    /// with the same cluster identity and slots) and waits until the
    /// cluster is healthy again.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        let deadline = Instant::now() + NODE_START_TIMEOUT;
        loop {
            match self.nodes[i].spawn() {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => panic!(
                    "cluster node {} did not restart: {e}; log:\n{}",
                    self.nodes[i].port,
                    self.nodes[i].log()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        if let Err(e) = self.wait_healthy() {
            panic!("{e}");
        }
    }

    /// Every running node's `CLUSTER INFO` says `cluster_state:ok`, with all
    /// 16384 slots served and every node known, and every replica is in
    /// sync with its master (so it could take over).
    pub fn is_healthy(&self) -> bool {
        let n = self.nodes.len();
        self.nodes.iter().filter(|n| n.child.is_some()).all(|node| {
            let info = cli(node.port, &["CLUSTER", "INFO"]);
            let replication = cli(node.port, &["INFO", "replication"]);
            let in_sync = field(&replication, "role") == Some("master")
                || field(&replication, "master_link_status") == Some("up");
            field(&info, "cluster_state") == Some("ok")
                && field(&info, "cluster_slots_ok") == Some("16384")
                && field(&info, "cluster_known_nodes") == Some(&n.to_string())
                && in_sync
        })
    }

    /// Waits until every replica has every write its master made (each
    /// master's `master_repl_offset` is the offset of each of its replicas).
    pub fn wait_replicas_in_sync(&self) {
        let in_sync = || {
            self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                let info = cli(n.port, &["INFO", "replication"]);
                if field(&info, "role") != Some("master") {
                    return true;
                }
                let offset = field(&info, "master_repl_offset").unwrap_or("?");
                let replicas = field(&info, "connected_slaves").and_then(|c| c.parse().ok());
                (0..replicas.unwrap_or(0)).all(|i| {
                    field(&info, &format!("slave{i}"))
                        .is_some_and(|r| r.split(',').any(|kv| kv == format!("offset={offset}")))
                })
            })
        };
        let deadline = Instant::now() + FORM_TIMEOUT;
        while !in_sync() {
            assert!(
                Instant::now() < deadline,
                "replicas not in sync after {FORM_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_healthy(&self) -> Result<(), String> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        while !self.is_healthy() {
            if Instant::now() >= deadline {
                let infos: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("{}:\n{}", n.port, cli(n.port, &["CLUSTER", "INFO"])))
                    .collect();
                return Err(format!(
                    "cluster not ok after {FORM_TIMEOUT:?}:\n{}",
                    infos.join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl RedisTarget for TestRedisCluster {
    fn url(&self) -> String {
        TestRedisCluster::url(self)
    }
}

impl Drop for TestRedisCluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for n in &mut self.nodes {
            if panicking {
                eprintln!(
                    "----- redis cluster node log (port {}) -----\n{}",
                    n.port,
                    n.log()
                );
            }
            n.kill();
        }
    }
}

impl Node {
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .args(["--daemonize", "no"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            // A replica's first sync starts at once rather than after 5 s.
            .args(["--repl-diskless-sync-delay", "0"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))?;
        let deadline = Instant::now() + NODE_START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server exited at start ({status})"));
            }
            if ping(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("redis-server did not answer PING in time".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `n` distinct client ports in [`PORT_RANGE`] whose client and bus ports
/// could both be bound a moment ago.
fn cluster_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::with_capacity(n);
    let span = u64::from(PORT_RANGE.end() - PORT_RANGE.start()) + 1;
    while ports.len() < n {
        let port = PORT_RANGE.start() + (random() % span) as u16;
        if ports.contains(&port) || ports.contains(&(port + BUS_OFFSET)) {
            continue;
        }
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + BUS_OFFSET) {
            ports.push(port);
        }
    }
    ports
}

fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish()
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `name` in an `INFO`-style reply (`name:value` lines).
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_masters_serve_every_slot_and_a_node_comes_back_after_a_restart() {
        let mut cluster = TestRedisCluster::start();
        assert!(cluster.is_healthy());
        let ports = cluster.ports();
        assert_eq!(ports.len(), 3);
        for p in &ports {
            // The cluster bus listens on port + 10000.
            std::net::TcpStream::connect(("127.0.0.1", p + BUS_OFFSET)).expect("cluster bus port");
        }
        let url = cluster.url();
        assert!(url.starts_with("redis-cluster://127.0.0.1:"), "{url}");
        assert_eq!(url.matches("node=127.0.0.1:").count(), 2, "{url}");

        // The slots are spread: three keys on three different masters.
        let masters: std::collections::HashSet<usize> = ["{a}", "{b}", "{c}", "{d}", "{e}"]
            .iter()
            .map(|k| cluster.master_of(cluster.slot(k)))
            .collect();
        assert!(masters.len() >= 2, "keys all on one master: {masters:?}");

        // One hash tag, one slot, whatever follows it.
        assert_eq!(cluster.slot("relay:{t:x}:s"), cluster.slot("relay:{t:x}:e"));

        assert_eq!(cluster.cli(&["SET", "{a}k", "v"]).trim(), "OK");
        let owner = cluster.master_of(cluster.slot("{a}k"));
        cluster.kill(owner);
        assert!(!cluster.is_running(owner));
        assert!(!ping(ports[owner]));
        cluster.restart(owner);
        assert!(cluster.is_healthy());
        assert_eq!(cluster.master_of(cluster.slot("{a}k")), owner);
        assert_eq!(
            cluster.cli(&["EXISTS", "{a}k"]).trim(),
            "0",
            "restarted empty"
        );
    }
}
