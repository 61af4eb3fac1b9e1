//! The calls of a lease holder that keeps nothing between calls (a worker
//! over HTTP, served by any gateway). Each call is first checked against
//! the lease in Redis and renews it there ([`Engine::heartbeat`]'s script),
//! so a lapsed or foreign lease answers [`AttemptError::LeaseLost`] and
//! changes nothing; then the same rules as for a local runner apply.
//!
//! The attempt's next chunk `seq` lives in the job's Redis hash: read by
//! the check, written back (fenced by the same lease) once the call's
//! chunks are published, so `seq` runs from 0 without gaps across calls
//! and gateways. Calls of one lease are meant to be made one at a time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::finish::{Finished, Outcome};
use super::{AttemptError, Engine, Lease};
use crate::jobs::events::{self, types};
use crate::jobs::queue::Touched;

/// What a holder learns when it renews its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Stop and report [`Engine::cancelled`]: the job was cancelled or ran
    /// past its `timeout_ms`.
    pub cancel: bool,
    /// How long the lease lasts from now unless renewed.
    pub lease_ms: u64,
}

/// An event a holder publishes for its attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteEvent {
    /// `job.progress`: an object with a numeric `percent` (0..=100), plus
    /// any fields of the holder's own.
    Progress(Value),
    /// `job.log`: `level` (`debug`, `info`, `warn`, `error`; default `info`) and `message`.
    Log { level: String, message: String },
    /// `job.chunk`: streamed text; the engine numbers it.
    Chunk(String),
}

impl RemoteEvent {
    /// The event of type `ty` with `data`, or why it is refused.
    pub fn parse(ty: &str, data: Value) -> Result<Self, String> {
        let Value::Object(mut map) = data else {
            return Err(format!("{ty}: data must be a JSON object"));
        };
        match ty {
            types::PROGRESS => {
                let percent = map
                    .get("percent")
                    .and_then(Value::as_f64)
                    .ok_or("job.progress: data.percent must be a number from 0 to 100")?;
                if !(0.0..=100.0).contains(&percent) {
                    return Err("job.progress: data.percent must be from 0 to 100".into());
                }
                map.remove("job_id");
                Ok(RemoteEvent::Progress(Value::Object(map)))
            }
            types::LOG => {
                let level = match map.get("level") {
                    None => "info".to_string(),
                    Some(Value::String(l))
                        if ["debug", "info", "warn", "error"].contains(&l.as_str()) =>
                    {
                        l.clone()
                    }
                    Some(_) => {
                        return Err("job.log: data.level must be debug, info, warn or error".into())
                    }
                };
                let Some(Value::String(message)) = map.remove("message") else {
                    return Err("job.log: data.message must be a string".into());
                };
                Ok(RemoteEvent::Log { level, message })
            }
            types::CHUNK => match map.remove("text") {
                Some(Value::String(text)) => Ok(RemoteEvent::Chunk(text)),
                _ => Err("job.chunk: data.text must be a string".into()),
            },
            other => Err(format!(
                "event type {other:?}: a worker publishes job.progress, job.log or job.chunk"
            )),
        }
    }
}

/// How often a remote attempt's progress is written to PostgreSQL at most.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Most jobs whose last progress write this process remembers.
const PROGRESS_JOBS: usize = 65_536;

/// When each remote attempt's progress was last written (bounded).
#[derive(Default)]
pub(super) struct ProgressWrites(Mutex<HashMap<String, Instant>>);

impl ProgressWrites {
    /// Whether job `id`'s progress may be written now (and note it).
    fn due(&self, id: &str) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return true;
        };
        let now = Instant::now();
        if map.len() >= PROGRESS_JOBS {
            map.retain(|_, at| now.duration_since(*at) < PROGRESS_EVERY);
            if map.len() >= PROGRESS_JOBS {
                return false;
            }
        }
        match map.get(id) {
            Some(at) if now.duration_since(*at) < PROGRESS_EVERY => false,
            _ => {
                map.insert(id.to_string(), now);
                true
            }
        }
    }
}

impl Engine {
    /// Checks and renews `lease`, recording the next chunk seq if given.
    async fn touch(&self, lease: &Lease, next_seq: Option<u64>) -> Result<Touched, AttemptError> {
        self.queue
            .touch(
                &lease.kind,
                &lease.id,
                &lease.token,
                self.lease_ms(),
                next_seq,
            )
            .await?
            .ok_or(AttemptError::LeaseLost)
    }

    fn heartbeat_of(&self, t: &Touched) -> Heartbeat {
        Heartbeat {
            cancel: t.cancel || t.timed_out,
            lease_ms: self.lease_ms(),
        }
    }

    /// Renews `lease`; tells whether the attempt must stop.
    pub async fn heartbeat(&self, lease: &Lease) -> Result<Heartbeat, AttemptError> {
        let t = self.touch(lease, None).await?;
        Ok(self.heartbeat_of(&t))
    }

    /// Publishes `events` of the attempt in order (numbering its chunks)
    /// and renews `lease`.
    pub async fn publish(
        &self,
        lease: &Lease,
        events: Vec<RemoteEvent>,
    ) -> Result<Heartbeat, AttemptError> {
        let t = self.touch(lease, None).await?;
        let mut seq = t.seq;
        let mut progress = None;
        let mut failed = None;
        for e in events {
            let (ty, data) = match e {
                RemoteEvent::Progress(p) => {
                    progress = Some(p.clone());
                    (types::PROGRESS, p)
                }
                RemoteEvent::Log { level, message } => {
                    (types::LOG, events::log_data(&level, message))
                }
                RemoteEvent::Chunk(text) => (types::CHUNK, events::chunk_data(seq, text)),
            };
            if let Err(e) = self.events.job(&lease.id, ty, data).await {
                failed = Some(AttemptError::Bus(e.to_string()));
                break;
            }
            if ty == types::CHUNK {
                seq += 1;
            }
        }
        let t = if seq != t.seq {
            self.touch(lease, Some(seq)).await?
        } else {
            t
        };
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(p) = progress {
            if self.progress_writes.due(&lease.id) {
                if let Err(e) = self.store.save_progress(&[(lease.id.clone(), p)]).await {
                    tracing::debug!(error = %e, "progress not saved");
                }
            }
        }
        Ok(self.heartbeat_of(&t))
    }

    /// The attempt's work is done: the job ends `completed`.
    pub async fn complete(&self, lease: &Lease, result: Value) -> Result<Finished, AttemptError> {
        self.end_remote(lease, |_| Outcome::Completed(result)).await
    }

    /// The attempt failed: retried with backoff while attempts remain and
    /// the error is `retryable`, else the job ends `failed`.
    pub async fn fail(
        &self,
        lease: &Lease,
        error: String,
        retryable: bool,
    ) -> Result<Finished, AttemptError> {
        self.end_remote(lease, |_| Outcome::Failed { error, retryable })
            .await
    }

    /// The holder stopped after being told to: a cancelled job ends
    /// `cancelled`; one that ran past its timeout is retried (or fails).
    pub async fn cancelled(&self, lease: &Lease) -> Result<Finished, AttemptError> {
        self.end_remote(lease, |t| {
            if t.cancel {
                Outcome::Cancelled("cancelled by request".into())
            } else if t.timed_out {
                Outcome::TimedOut
            } else {
                Outcome::Cancelled("cancelled by the worker".into())
            }
        })
        .await
    }

    async fn end_remote(
        &self,
        lease: &Lease,
        outcome: impl FnOnce(&Touched) -> Outcome,
    ) -> Result<Finished, AttemptError> {
        // A successful check renews the lease for a whole lease time, so
        // it cannot lapse (and be taken back) before the fenced write.
        let t = self.touch(lease, None).await?;
        let ran = Duration::from_millis(t.ran_ms);
        let outcome = outcome(&t);
        match self
            .finish_lease(lease, t.max_attempts, t.timeout_ms, outcome, None, ran)
            .await
        {
            Finished::NotOwner => Err(AttemptError::LeaseLost),
            Finished::NotWritten => Err(AttemptError::Store(crate::jobs::StoreError::Unavailable(
                "the end was not written; try again".into(),
            ))),
            done => Ok(done),
        }
    }
}
