//! The rules of one attempt, in one place: the Rust worker runs its
//! handlers with them, and the gateway's workers over HTTP call them for
//! leases held by remote workers.
//!
//! An attempt's life:
//!
//! 1. **Lease** ([`Engine::pull`], then [`Engine::start`]; or
//!    [`Engine::lease`] for both): the queue hands out a job under a fresh
//!    lease token; PostgreSQL makes it `running` under that token and
//!    `job.started` goes out. A job that must not run (cancelled before it
//!    started, out of attempts, already ended) is ended or dropped here,
//!    never handed to a runner.
//! 2. **While it runs**: the lease is renewed ([`Engine::renew`] for a
//!    process that holds many, [`Engine::heartbeat`] for one held
//!    remotely), which reports leases lost, cancels asked for and timeouts.
//!    Progress, logs and chunks go out through [`Engine::publish`]
//!    (a remote holder's chunk `seq` is kept in the job's Redis hash,
//!    fenced by the lease, so it has no gap across calls and gateways).
//! 3. **End** ([`Engine::finish`]): completed, failed (retried with backoff
//!    while attempts remain), cancelled, timed out (retried), or given back
//!    (shutdown, not counted). Terminal states are written to PostgreSQL
//!    fenced by the lease token, with their outbox row in the same
//!    statement, then announced ([`super::outbox`]) and acknowledged in the
//!    queue. A remote holder's call is first checked and its lease renewed
//!    in Redis, so a lapsed or foreign lease changes nothing
//!    ([`AttemptError::LeaseLost`]).
//! 4. **Lapse** ([`Engine::reclaim`]): a lease not renewed in time is taken
//!    back and the job runs again (the attempt counts); a job whose cancel
//!    was never acknowledged ends `cancelled`, and one out of attempts
//!    ends `failed`.
//!
//! # Layout
//!
//! - `start`: pulling and starting attempts.
//! - `finish`: ending, retrying and giving back attempts.
//! - `remote`: the calls of a holder that keeps nothing between calls.
//! - `lapse`: lease renewal and reclaim.
//! - `metrics`: the job metrics the engine counts.

mod finish;
mod lapse;
mod metrics;
mod remote;
mod start;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::events::{JobEvents, JobRef};
use super::queue::{Queue, QueueError};
use super::store::{Store, StoreError};

pub use finish::{Finished, Outcome};
pub use lapse::Renewal;
pub use remote::{Heartbeat, RemoteEvent};
pub use start::{Leased, Start};

/// How long a handler told to stop may take before it is dropped.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// What went wrong with an attempt's call.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The lease is no longer current (it lapsed and the job was taken
    /// back, or the job ended): nothing was changed.
    #[error("the lease is no longer held")]
    LeaseLost,
    /// An event this engine does not publish for a runner.
    #[error("{0}")]
    BadEvent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("redis is unavailable: {0}")]
    Bus(String),
}

impl AttemptError {
    /// Whether the caller may try again later (PostgreSQL or Redis away).
    pub fn is_unavailable(&self) -> bool {
        match self {
            AttemptError::Store(e) => e.is_unavailable(),
            AttemptError::Queue(e) => e.is_unavailable(),
            AttemptError::Bus(_) => true,
            AttemptError::LeaseLost | AttemptError::BadEvent(_) => false,
        }
    }
}

/// A lease on one attempt: which job, which attempt, and the token that
/// proves the holder. A remote holder carries it as one string
/// ([`Lease::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub kind: String,
    pub token: String,
    /// The attempt's number, from 1.
    pub attempt: u32,
}

impl Lease {
    /// `{kind}:{attempt}:{token}` (kinds have no `:`, tokens are hex).
    pub fn encode(&self) -> String {
        format!("{}:{}:{}", self.kind, self.attempt, self.token)
    }

    /// The lease `s` on job `id`, if `s` is one [`Lease::encode`] could make.
    pub fn decode(id: &str, s: &str) -> Option<Lease> {
        let mut parts = s.splitn(3, ':');
        let kind = parts.next()?;
        let attempt: u32 = parts.next()?.parse().ok()?;
        let token = parts.next()?;
        let hex = token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit());
        if !super::model::valid_kind_name(kind) || !hex || attempt == 0 || id.is_empty() {
            return None;
        }
        Some(Lease {
            id: id.to_string(),
            kind: kind.to_string(),
            token: token.to_string(),
            attempt,
        })
    }
}

/// An attempt that started: what its runner needs to run it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub lease: Lease,
    pub owner: String,
    pub payload: Value,
    pub max_attempts: u32,
    pub timeout_ms: u64,
    /// When the job was submitted.
    pub created_at: DateTime<Utc>,
}

impl Attempt {
    pub fn job(&self) -> JobRef<'_> {
        JobRef::new(&self.lease.id, &self.lease.kind, &self.owner)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Settings of an engine.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// How long a lease lasts unless renewed (`RELAY_JOB_LEASE`).
    pub lease: Duration,
    /// How long an attempt's end is retried while PostgreSQL is away before
    /// the lease is let go (and the job runs again elsewhere).
    pub write_retry_for: Duration,
    /// Most jobs of one kind one owner may have running (0: no limit;
    /// `RELAY_MAX_RUNNING_PER_OWNER`).
    pub max_running_per_owner: u32,
}

impl EngineSettings {
    /// For a process that runs attempts itself: ends are retried for a minute.
    pub fn local(lease: Duration) -> Self {
        Self {
            lease,
            write_retry_for: Duration::from_secs(60),
            max_running_per_owner: 0,
        }
    }

    /// For a gateway answering remote holders, who retry a call that
    /// failed: ends fail fast.
    pub fn remote(lease: Duration) -> Self {
        Self {
            lease,
            write_retry_for: Duration::from_secs(2),
            max_running_per_owner: 0,
        }
    }
}

/// The attempt rules over a store, a queue and the events; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    pub queue: Queue,
    pub events: JobEvents,
    settings: EngineSettings,
    progress_writes: Arc<remote::ProgressWrites>,
}

impl Engine {
    pub fn new(store: Store, queue: Queue, events: JobEvents, settings: EngineSettings) -> Self {
        Self {
            store,
            queue,
            events,
            settings,
            progress_writes: Arc::default(),
        }
    }

    /// With at most `n` running jobs of one kind per owner (0: no limit).
    pub fn per_owner(mut self, n: u32) -> Self {
        self.settings.max_running_per_owner = n;
        self
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    fn lease_ms(&self) -> u64 {
        self.settings.lease.as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_round_trip_and_refuse_junk() {
        let lease = Lease {
            id: "0193-ab".into(),
            kind: "ocr.v2".into(),
            token: "0123456789abcdef0123456789abcdef".into(),
            attempt: 2,
        };
        let s = lease.encode();
        assert_eq!(Lease::decode("0193-ab", &s), Some(lease));
        for bad in [
            "",
            "ocr",
            "ocr:2",
            "ocr:x:0123456789abcdef0123456789abcdef",
            "ocr:0:0123456789abcdef0123456789abcdef",
            "OCR:1:0123456789abcdef0123456789abcdef",
            "ocr:1:short",
            "ocr:1:0123456789abcdef0123456789abcdeg",
        ] {
            assert_eq!(Lease::decode("0193-ab", bad), None, "{bad}");
        }
    }
}
