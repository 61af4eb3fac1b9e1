//! What a run costs: CPU seconds of every process taking part (gateways,
//! workers, Redis, PostgreSQL, peer servers, and this load generator) over
//! the measured window, grouped by role, and per unit of work (delivery,
//! publish, job, idle connection).
//!
//! CPU is `utime + stime` from `/proc/<pid>/stat`. A process measured as a
//! [`Scope::Tree`] counts its descendants too (PostgreSQL forks a backend
//! per connection); this process is measured alone ([`Scope::Process`]),
//! since the stack it starts are its children. Processes that appear during
//! the window count from zero; ones that end during it are not counted for
//! the part they used (so measure only while the stack is up).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::report::round;
use crate::sys::{self, TICKS_PER_SEC};

/// Roles of the processes in a report (keys of `cost.cpu_s`).
pub mod role {
    pub const GATEWAY: &str = "gateway";
    pub const WORKER: &str = "worker";
    pub const REDIS: &str = "redis";
    pub const POSTGRES: &str = "postgres";
    /// A peer's server (the bare broadcast server, socket.io).
    pub const SERVER: &str = "server";
    /// The load generator (this process).
    pub const BENCH: &str = "bench";
}

/// The sum of every role but the load generator: what the system under test
/// costs (key `servers` in a report).
pub const SERVERS: &str = "servers";
/// Everything, the load generator included.
pub const TOTAL: &str = "total";

/// Whether a process's children count with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Tree,
    Process,
}

/// One process to measure.
#[derive(Debug, Clone)]
pub struct Proc {
    pub name: String,
    pub role: &'static str,
    pub pid: u32,
    pub scope: Scope,
}

impl Proc {
    pub fn tree(name: impl Into<String>, role: &'static str, pid: u32) -> Proc {
        Proc {
            name: name.into(),
            role,
            pid,
            scope: Scope::Tree,
        }
    }

    /// This process alone, as the load generator.
    pub fn this_bench() -> Proc {
        Proc {
            name: "bench".into(),
            role: role::BENCH,
            pid: std::process::id(),
            scope: Scope::Process,
        }
    }
}

/// CPU ticks of each pid `proc` covers, from one scan of `/proc`.
fn ticks_of(proc: &Proc, all: &HashMap<u32, (u64, u32)>) -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    let mut frontier = vec![proc.pid];
    while let Some(pid) = frontier.pop() {
        let Some((ticks, _)) = all.get(&pid) else {
            continue;
        };
        out.insert(pid, *ticks);
        if proc.scope == Scope::Tree {
            frontier.extend(
                all.iter()
                    .filter(|(_, (_, ppid))| *ppid == pid)
                    .map(|(child, _)| *child),
            );
        }
    }
    out
}

/// Meters started together at the start of a measured window.
#[derive(Debug, Clone)]
pub struct Accounting {
    meters: Vec<(Proc, HashMap<u32, u64>)>,
    started: Instant,
}

impl Accounting {
    /// Starts measuring `procs` (plus this process as the load generator).
    pub fn start(mut procs: Vec<Proc>) -> Accounting {
        procs.push(Proc::this_bench());
        let all = sys::all_processes();
        Accounting {
            meters: procs
                .into_iter()
                .map(|p| {
                    let t = ticks_of(&p, &all);
                    (p, t)
                })
                .collect(),
            started: Instant::now(),
        }
    }

    /// The CPU each process used since [`start`](Self::start), and its RSS now.
    pub fn finish(&self) -> Window {
        let secs = self
            .started
            .elapsed()
            .max(Duration::from_millis(1))
            .as_secs_f64();
        let all = sys::all_processes();
        let usage = self
            .meters
            .iter()
            .map(|(p, start)| {
                let used: u64 = ticks_of(p, &all)
                    .iter()
                    .map(|(pid, t)| t.saturating_sub(start.get(pid).copied().unwrap_or(0)))
                    .sum();
                Usage {
                    name: p.name.clone(),
                    role: p.role,
                    pid: p.pid,
                    cpu_s: used as f64 / TICKS_PER_SEC,
                    rss_kib: sys::rss_kib(p.pid).unwrap_or(0),
                }
            })
            .collect();
        Window { secs, usage }
    }
}

/// What one process used over a window.
#[derive(Debug, Clone)]
pub struct Usage {
    pub name: String,
    pub role: &'static str,
    pub pid: u32,
    pub cpu_s: f64,
    /// RSS of the process (the root of a tree) at the end, KiB.
    pub rss_kib: u64,
}

/// A measured window: its length and each process's usage.
#[derive(Debug, Clone)]
pub struct Window {
    pub secs: f64,
    pub usage: Vec<Usage>,
}

impl Window {
    /// CPU seconds by role, plus [`SERVERS`] and [`TOTAL`].
    pub fn cpu_by_role(&self) -> BTreeMap<&'static str, f64> {
        let mut by: BTreeMap<&'static str, f64> = BTreeMap::new();
        for u in &self.usage {
            *by.entry(u.role).or_default() += u.cpu_s;
            *by.entry(TOTAL).or_default() += u.cpu_s;
            if u.role != role::BENCH {
                *by.entry(SERVERS).or_default() += u.cpu_s;
            }
        }
        by.entry(SERVERS).or_default();
        by.entry(TOTAL).or_default();
        by
    }

    /// `[{name, role, pid, cpu_s, cpu_percent, rss_mib}]`; `cpu_percent` is
    /// of one core over the window.
    pub fn processes_json(&self) -> Value {
        Value::Array(
            self.usage
                .iter()
                .map(|u| {
                    json!({
                        "name": u.name,
                        "role": u.role,
                        "pid": u.pid,
                        "cpu_s": round(u.cpu_s, 2),
                        "cpu_percent": round(u.cpu_s / self.secs * 100.0, 1),
                        "rss_mib": round(u.rss_kib as f64 / 1024.0, 1),
                    })
                })
                .collect(),
        )
    }

    /// `{"window_s", "cpu_s": {role: s, "servers", "total"}, "per": [{"unit",
    /// "count", "cpu_us": {role: µs per unit, ...}}]}`: CPU microseconds
    /// per unit of work, for each unit given (a unit with a count of 0 gets
    /// `null`s).
    pub fn cost_json(&self, units: &[(&str, u64)]) -> Value {
        let by = self.cpu_by_role();
        let cpu_s: Map<String, Value> = by
            .iter()
            .map(|(r, s)| (r.to_string(), json!(round(*s, 3))))
            .collect();
        let per: Vec<Value> = units
            .iter()
            .map(|(unit, count)| {
                let cpu_us: Map<String, Value> = by
                    .iter()
                    .map(|(r, s)| {
                        let v = (*count > 0).then(|| round(s * 1e6 / *count as f64, 3));
                        (r.to_string(), json!(v))
                    })
                    .collect();
                json!({"unit": unit, "count": count, "cpu_us": cpu_us})
            })
            .collect();
        json!({"window_s": round(self.secs, 3), "cpu_s": cpu_s, "per": per})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        let u = |name: &str, role, cpu_s| Usage {
            name: name.into(),
            role,
            pid: 1,
            cpu_s,
            rss_kib: 2048,
        };
        Window {
            secs: 2.0,
            usage: vec![
                u("gateway1", role::GATEWAY, 1.0),
                u("gateway2", role::GATEWAY, 0.5),
                u("redis", role::REDIS, 0.25),
                u("bench", role::BENCH, 2.0),
            ],
        }
    }

    #[test]
    fn sums_roles_and_divides_per_unit() {
        let c = window().cost_json(&[("delivery", 1000), ("publish", 0)]);
        assert_eq!(c["cpu_s"]["gateway"], 1.5);
        assert_eq!(c["cpu_s"]["servers"], 1.75);
        assert_eq!(c["cpu_s"]["total"], 3.75);
        let d = &c["per"][0];
        assert_eq!(d["unit"], "delivery");
        assert_eq!(d["cpu_us"]["gateway"], 1500.0);
        assert_eq!(d["cpu_us"]["servers"], 1750.0);
        assert_eq!(d["cpu_us"]["bench"], 2000.0);
        assert!(c["per"][1]["cpu_us"]["total"].is_null());
        let p = window().processes_json();
        assert_eq!(p[0]["cpu_percent"], 50.0);
        assert_eq!(p[0]["rss_mib"], 2.0);
    }

    #[test]
    fn a_tree_counts_its_children_and_this_process_is_measured_alone() {
        let me = std::process::id();
        let acc = Accounting::start(vec![Proc::tree("tree", role::SERVER, me)]);
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("spawn sh");
        // Let the child burn at least 50 ms of CPU (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(30);
        while sys::stat(child.id()).map_or(0, |(t, _)| t) < 5 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let w = acc.finish();
        let _ = child.kill();
        let _ = child.wait();
        let tree = w.usage.iter().find(|u| u.name == "tree").unwrap();
        let alone = w.usage.iter().find(|u| u.role == role::BENCH).unwrap();
        assert_eq!(alone.pid, me);
        assert!(tree.cpu_s - alone.cpu_s >= 0.05 - 1e-9, "{w:?}");
        assert!(alone.rss_kib > 0);
    }
}
