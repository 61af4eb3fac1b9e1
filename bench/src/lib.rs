//! relay-bench: a load generator for Relay that speaks only the public
//! contract (WebSocket `/v1/ws`, `POST /v1/publish`, `/v1/jobs`), and the
//! bare broadcast server it is measured against.
//!
//! Each scenario runs against gateways given by URL, or starts its own
//! throwaway stack (Redis, PostgreSQL, release gateways and workers) through
//! relay-testkit with `--spawn N`, or bare servers with `--bare N`. Every
//! loop is bounded in count and time. Latency comes from a timestamp in
//! each event's data (`{"t": <send time, µs since the epoch>, "seq": n}`),
//! recorded in HDR histograms; losses are counted per client by `seq`. What
//! a run costs (CPU seconds of every process over the measured window, per
//! unit of work) is read from `/proc`, Redis's time per command from
//! `INFO commandstats`.
//!
//! # Layout
//!
//! - [`client`]: WebSocket connect (with a chosen source address), subscribe,
//!   cheap event parsing, the per-client `seq` set.
//! - [`collect`]: sharded latency histograms shared by many client tasks.
//! - [`stack`]: the target gateways, or a stack (or bare servers) started here.
//! - [`sys`]: CPU and RSS of processes from `/proc`, pids by listening port.
//! - [`cost`]: CPU per process and role over a window, and per unit of work.
//! - [`redis_stats`]: `INFO commandstats` before and after, per command.
//! - [`report`]: histogram summaries and the JSON report; [`summary`]: the
//!   table of a sitting's reports.
//! - [`fanout`], [`topics`], [`connections`], [`jobs`], [`resume`]: the scenarios.
//! - [`bare`]: the bare tokio-tungstenite broadcast server (binary
//!   `bare-broadcast`), the fan-out ceiling.

pub mod bare;
pub mod client;
pub mod collect;
pub mod connections;
pub mod cost;
pub mod fanout;
pub mod jobs;
pub mod redis_stats;
pub mod report;
pub mod resume;
pub mod stack;
pub mod summary;
pub mod sys;
pub mod topics;

/// Raises this process's open-files soft limit to its hard limit (each
/// client is a socket) and returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024),
    }
}
