//! What Relay's gateway and worker share: the protocol, configuration, Redis
//! key naming, the publish and history scripts, and process plumbing.
//!
//! # Layout
//!
//! - [`topic`]: topic names and their reserved shapes.
//! - [`event`]: event ids (Redis stream ids), `since`, and the event frame format.
//! - [`protocol`]: WebSocket client ops, server frames, error and close codes.
//! - [`keys`]: Redis keys and channels; one hash tag per topic.
//! - [`bus`]: publishing and reading history (one Lua script each).
//! - [`cursor`]: opaque poll and SSE cursors.
//! - [`config`]: both processes' configuration from the environment.
//! - [`redis`]: Redis clients with Relay's reconnect and timeout policy, and
//!   a process's connections (commands, pub/sub, the bus).
//! - [`instances`]: the reports gateways and workers write of themselves for `/v1/status`.
//! - [`process`]: what both mains do: configuration or exit, bind or exit, exit codes.
//! - [`telemetry`]: tracing and Prometheus setup.
//! - [`shutdown`]: SIGTERM/SIGINT to a cancellation token.
//! - [`clock`]: wall-clock milliseconds.
//! - [`failpoint`]: places a test can hold a process at (test builds only).
//! - [`jobs`]: the job half: records in PostgreSQL, the queue on Redis, job events.

pub mod bus;
pub mod clock;
pub mod config;
pub mod cursor;
pub mod event;
pub mod failpoint;
pub mod instances;
pub mod jobs;
pub mod keys;
pub mod process;
pub mod protocol;
pub mod redis;
pub mod shutdown;
pub mod telemetry;
pub mod topic;
