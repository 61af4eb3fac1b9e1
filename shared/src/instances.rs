//! Instance reports: every gateway and worker writes a report of itself
//! into one Redis hash every few seconds (and removes it when it stops);
//! `GET /v1/status` lists the fresh ones, with the polling clients seen in
//! the last minute.

use std::collections::HashMap;

use fred::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bus::BusError;
use crate::keys;

/// How often an instance reports itself.
pub const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// Reports older than this are not listed.
pub const STALE_AFTER_MS: u64 = 15_000;
/// Reports older than this are deleted.
pub const FORGET_AFTER_MS: u64 = 3_600_000;
/// A polling client counts as present this long after its last poll.
pub const POLLER_WINDOW_MS: u64 = 60_000;

/// What one instance says of itself, with its role as the `role` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum InstanceReport {
    Gateway(GatewayReport),
    Worker(WorkerReport),
}

/// A gateway's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayReport {
    pub id: String,
    /// Open WebSocket connections.
    pub connections: u64,
    /// Topic subscriptions those connections hold.
    pub subscriptions: u64,
    /// Topics with local interest.
    pub topics: u64,
    /// Long-lived clients held (WebSocket, SSE, long-poll).
    pub clients: u64,
    pub uptime_s: u64,
    pub started_at_ms: u64,
    /// When the report was written (ms since the Unix epoch).
    pub seen_ms: u64,
    pub draining: bool,
}

/// A worker's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    pub id: String,
    pub kinds: Vec<String>,
    /// Jobs running now.
    pub running: u64,
    pub concurrency: u64,
    pub started_at_ms: u64,
    /// When the report was written (ms since the Unix epoch).
    pub seen_ms: u64,
}

impl InstanceReport {
    pub fn id(&self) -> &str {
        match self {
            InstanceReport::Gateway(g) => &g.id,
            InstanceReport::Worker(w) => &w.id,
        }
    }

    pub fn seen_ms(&self) -> u64 {
        match self {
            InstanceReport::Gateway(g) => g.seen_ms,
            InstanceReport::Worker(w) => w.seen_ms,
        }
    }

    /// Whether the report is older than `after_ms` at `now_ms`.
    fn older_than(&self, now_ms: u64, after_ms: u64) -> bool {
        now_ms.saturating_sub(self.seen_ms()) > after_ms
    }
}

/// Writes (or replaces) an instance's report.
pub async fn write(client: &Client, report: &InstanceReport) -> Result<(), BusError> {
    let body = serde_json::to_string(report).map_err(|e| BusError::Redis(e.to_string()))?;
    let _: i64 = client
        .hset(keys::INSTANCES, (report.id(), body))
        .await
        .map_err(BusError::from)?;
    Ok(())
}

/// Removes an instance's report (when it stops).
pub async fn forget(client: &Client, id: &str) -> Result<(), BusError> {
    let _: i64 = client
        .hdel(keys::INSTANCES, id)
        .await
        .map_err(BusError::from)?;
    Ok(())
}

/// Every report, by instance id; entries that are not a report are `None`.
async fn read_all(client: &Client) -> Result<Vec<(String, Option<InstanceReport>)>, BusError> {
    let all: HashMap<String, String> = client
        .hgetall(keys::INSTANCES)
        .await
        .map_err(BusError::from)?;
    Ok(all
        .into_iter()
        .map(|(id, body)| (id, serde_json::from_str(&body).ok()))
        .collect())
}

/// The reports written in the last [`STALE_AFTER_MS`], by id.
pub async fn list(client: &Client, now_ms: u64) -> Result<Vec<InstanceReport>, BusError> {
    let mut fresh: Vec<InstanceReport> = read_all(client)
        .await?
        .into_iter()
        .filter_map(|(_, r)| r)
        .filter(|r| !r.older_than(now_ms, STALE_AFTER_MS))
        .collect();
    fresh.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(fresh)
}

/// Deletes reports older than [`FORGET_AFTER_MS`] (instances that died
/// without removing theirs), and entries that are not reports.
pub async fn forget_stale(client: &Client, now_ms: u64) -> Result<(), BusError> {
    let stale: Vec<String> = read_all(client)
        .await?
        .into_iter()
        .filter(|(_, r)| {
            r.as_ref()
                .is_none_or(|r| r.older_than(now_ms, FORGET_AFTER_MS))
        })
        .map(|(id, _)| id)
        .collect();
    if !stale.is_empty() {
        let _: i64 = client
            .hdel(keys::INSTANCES, stale)
            .await
            .map_err(BusError::from)?;
    }
    Ok(())
}

/// Notes that a polling client (`user@address`) polled at `now_ms`.
pub async fn note_poller(client: &Client, member: &str, now_ms: u64) -> Result<(), BusError> {
    let _: i64 = client
        .zadd(
            keys::POLLERS,
            None,
            None,
            false,
            false,
            (now_ms as f64, member),
        )
        .await
        .map_err(BusError::from)?;
    Ok(())
}

/// Polling clients seen in the last [`POLLER_WINDOW_MS`]; older ones are
/// forgotten on the way.
pub async fn count_pollers(client: &Client, now_ms: u64) -> Result<u64, BusError> {
    let since = now_ms.saturating_sub(POLLER_WINDOW_MS) as f64;
    let _: i64 = client
        .zremrangebyscore(keys::POLLERS, f64::NEG_INFINITY, since)
        .await
        .map_err(BusError::from)?;
    client
        .zcount(keys::POLLERS, since, f64::INFINITY)
        .await
        .map_err(BusError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_carry_their_role_and_round_trip() {
        let w = InstanceReport::Worker(WorkerReport {
            id: "w1".into(),
            kinds: vec!["sleep".into()],
            running: 2,
            concurrency: 16,
            started_at_ms: 1,
            seen_ms: 2,
        });
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["role"], "worker");
        assert_eq!(json["kinds"][0], "sleep");
        assert_eq!(serde_json::from_value::<InstanceReport>(json).unwrap(), w);
        assert!(serde_json::from_str::<InstanceReport>(r#"{"role":"other","id":"x"}"#).is_err());
    }

    #[test]
    fn staleness_counts_from_the_report_time() {
        let g = InstanceReport::Gateway(GatewayReport {
            id: "g".into(),
            connections: 0,
            subscriptions: 0,
            topics: 0,
            clients: 0,
            uptime_s: 0,
            started_at_ms: 0,
            seen_ms: 1_000,
            draining: false,
        });
        assert!(!g.older_than(1_000 + STALE_AFTER_MS, STALE_AFTER_MS));
        assert!(g.older_than(1_001 + STALE_AFTER_MS, STALE_AFTER_MS));
    }
}
