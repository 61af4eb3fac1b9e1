//! A throwaway `redis-server` on a free loopback port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::wait::free_port;

/// How long a starting Redis may take to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A Redis the processes under test can be pointed at: one server
/// ([`TestRedis`]) or a cluster ([`TestRedisCluster`](crate::TestRedisCluster)).
pub trait RedisTarget {
    /// The URL for `RELAY_REDIS_URL`.
    fn url(&self) -> String;
}

impl RedisTarget for TestRedis {
    fn url(&self) -> String {
        TestRedis::url(self)
    }
}

/// A real `redis-server` without persistence, in its own temporary directory.
///
/// Killed (SIGKILL) when dropped. [`restart`](Self::restart) brings it back
/// empty on the same port, as a Redis without persistence comes back after a
/// crash: every topic's history and epoch are gone.
pub struct TestRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
}

impl TestRedis {
    /// Starts `redis-server` (from `PATH`) on a free port and waits until it
    /// answers `PING`.
    pub fn start() -> TestRedis {
        let dir = tempfile::Builder::new()
            .prefix("relay-redis-")
            .tempdir()
            .expect("temp dir for redis");
        let mut redis = TestRedis {
            port: 0,
            dir,
            child: None,
            starts: 0,
        };
        // Another process may take the port between `free_port` and the bind.
        for _ in 0..5 {
            redis.port = free_port();
            if redis.spawn().is_ok() {
                return redis;
            }
        }
        panic!("redis-server did not start; last log:\n{}", redis.log());
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL (nothing is saved) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, then starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        // The port may be briefly unbindable right after the kill.
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    panic!(
                        "redis-server did not restart on port {}: {e}; log:\n{}",
                        self.port,
                        self.log()
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Sends one command with `redis-cli` and returns its output (for
    /// inspecting what the gateway stored).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server's log (all of its starts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        self.starts += 1;
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
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))?;
        let deadline = Instant::now() + START_TIMEOUT;
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

    /// The server's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- redis-server log (port {}) -----\n{}",
                self.port,
                self.log()
            );
        }
        self.kill();
    }
}

/// Whether a Redis on this port answers `PING` with `+PONG`.
pub fn ping(port: u16) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    let mut got = 0;
    while got < 7 {
        match stream.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    buf.starts_with(b"+PONG\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_restarts_empty_on_the_same_port() {
        let mut redis = TestRedis::start();
        assert!(ping(redis.port()));
        assert!(redis.url().starts_with("redis://127.0.0.1:"));
        assert_eq!(redis.cli(&["SET", "k", "v"]).trim(), "OK");
        let port = redis.port();
        redis.kill();
        assert!(!ping(port));
        redis.restart();
        assert_eq!(redis.port(), port);
        assert!(ping(port));
        assert_eq!(redis.cli(&["EXISTS", "k"]).trim(), "0");
    }
}
