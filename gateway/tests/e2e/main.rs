//! Black-box end-to-end tests of the event path, built to `PROTOCOL.md`.
//!
//! Every test starts its own `redis-server` (and PostgreSQL where readiness
//! is checked) and one or more real `relay-gateway` processes on free
//! loopback ports, then talks to them as clients do: WebSocket, long-poll,
//! SSE and the server API. Nothing inside the gateway is reached into.
//!
//! # Layout
//!
//! - `support`: shared builders and assertions.
//! - `event_path`: welcome, subscribe, fan-out across gateways, replay,
//!   trimmed history, fail-over after a SIGKILL.
//! - `replay_race`: resuming with `since` while events are published as fast
//!   as possible: no gap, no duplicate.
//! - `http_transports`: long-poll and Server-Sent Events.
//! - `cluster`: the core scenarios above on a real Redis Cluster.
//! - `protocol_errors`: malformed frames, frame size and subscription limits.
//! - `backpressure`: slow consumers (4008) and heartbeats.
//! - `redis_outage`: Redis lost and back: readiness, fail-fast, epochs.
//! - `operations`: drain on SIGTERM, health, metrics, OpenAPI, status, config.
//! - `security`: real tokens (HS256, RS256, ES256), expiry, permissions on
//!   jobs and topics, and the limits (rates, connections, sizes, origins,
//!   slow headers).
//! - `metrics_catalogue`: `docs/metrics.md` against both processes' `/metrics`.
//! - `dashboards`: Grafana panels queried on a real Prometheus; alert rules
//!   through `promtool`.

mod backpressure;
mod cluster;
mod compose;
mod dashboards;
mod event_path;
mod helm_chart;
mod http_transports;
mod json_logs;
mod load_balancer;
mod metrics_catalogue;
mod operations;
mod protocol_errors;
mod redis_outage;
mod replay_race;
mod schemathesis;
mod security;
mod support;
