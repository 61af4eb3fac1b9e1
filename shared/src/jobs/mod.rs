//! The job half of Relay, shared by the gateway (which records, enqueues and
//! cancels jobs) and the worker (which runs them).
//!
//! PostgreSQL is the source of truth for a job ([`store`]): its record, its
//! state, and the lease token of the attempt that currently owns it. Redis
//! holds only what is needed to hand live jobs to workers ([`queue`]): one
//! small hash per live job and three sorted sets per kind. A job leaves
//! Redis when it ends; PostgreSQL keeps it.
//!
//! Every terminal state is written by one conditional `UPDATE ... WHERE state
//! IN ('queued','running') [AND lease_token = $token] RETURNING`, so a job
//! reaches exactly one terminal state, whatever crashes and retries happen;
//! the same statement queues its event in an outbox, published once by the
//! writer or a sweep ([`outbox`]), so the end is always announced, once.
//!
//! # Layout
//!
//! - [`model`]: job states, [`JobRecord`](model::JobRecord), submit requests and their limits.
//! - [`kinds`]: payloads of the built-in kinds (`sleep`, `stream`, `reconcile`) and their validation.
//! - [`store`]: PostgreSQL: pool, migrations, job records, uploads.
//! - [`queue`]: the Redis queue: leases, retries, delays, priorities, cancellation (Lua scripts in `lua/`).
//! - [`events`]: publishing job events to `job:{id}`, `user:{owner}` and `jobs`.
//! - [`outbox`]: terminal events announced once, by their writer or a sweep.
//! - [`attempt`]: the rules of one attempt, for the Rust worker and workers over HTTP.
//! - [`backoff`]: exponential backoff with jitter.
//! - [`service`]: [`Jobs`]: submit, cancel, re-drive and the sweeps, on top of the three.

pub mod attempt;
pub mod backoff;
pub mod events;
pub mod kinds;
pub mod model;
pub mod outbox;
pub mod queue;
pub mod service;
pub mod store;

pub use model::{JobRecord, JobState, SubmitRequest};
pub use queue::Queue;
pub use service::{Jobs, JobsError};
pub use store::{Store, StoreError};

/// Builds a fresh job id: a UUIDv7, so ids sort by creation time.
pub fn new_job_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Builds a fresh random token (lease tokens, upload ids): 32 hex characters.
pub fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}
