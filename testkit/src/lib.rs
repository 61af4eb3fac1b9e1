//! Relay's test kit: real processes for black-box end-to-end tests.
//!
//! Everything here runs the real thing on loopback: a `redis-server` and a
//! PostgreSQL cluster in temporary directories on free ports, and the real
//! `relay-gateway` and `relay-worker` binaries configured through their
//! environment, exactly as an operator would run them. Tests talk to them the
//! way clients do: WebSocket ([`WsClient`], and [`RawWs`] for clients that
//! misbehave on purpose), HTTP with `reqwest`, and Server-Sent Events
//! ([`SseStream`]).
//!
//! Each test owns its servers and ports, so tests run in parallel. Every wait
//! is bounded; asynchronous conditions are awaited with [`eventually!`] (or
//! [`eventually`]) rather than sleeps. Processes are killed when dropped, and
//! a process's log is printed when the test that owns it panics.
//!
//! # Layout
//!
//! - [`wait`]: [`free_port`], [`eventually!`] and [`eventually`].
//! - [`redis`]: [`TestRedis`], a throwaway `redis-server`, and [`RedisTarget`],
//!   what either kind of Redis offers the processes under test.
//! - [`cluster`]: [`TestRedisCluster`], a throwaway three-master Redis Cluster.
//! - [`postgres`]: [`TestPostgres`], a throwaway PostgreSQL cluster.
//! - [`process`]: [`TestGateway`] and [`TestWorker`], the real binaries.
//! - [`ws`]: [`WsClient`] (tokio-tungstenite) and [`RawWs`] (a hand-made
//!   client that never answers pings and reads only when told).
//! - [`http`]: [`publish`], long-poll and [`SseStream`] helpers.
//! - [`jwt`]: HS256, RS256 and ES256 tokens (keys made with `openssl`), and
//!   tokens a verifier must refuse.

pub mod cluster;
pub mod http;
pub mod jwt;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod wait;
pub mod ws;

pub use cluster::TestRedisCluster;
pub use http::{poll, publish, try_publish, SseEvent, SseStream};
pub use postgres::TestPostgres;
pub use process::{bin_path, GatewayBuilder, TestGateway, TestWorker, WorkerBuilder};
pub use redis::{RedisTarget, TestRedis};
pub use wait::{eventually, free_port, wait_until};
pub use ws::{RawClose, RawWs, WsClient};

/// The API key every [`TestGateway`] accepts (`RELAY_API_KEYS`).
pub const API_KEY: &str = "test-api-key-0123456789";

#[doc(hidden)]
pub mod __private {
    pub use tokio;
}
