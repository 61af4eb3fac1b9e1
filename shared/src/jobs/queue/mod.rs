//! The job queue on Redis: at-least-once, with a lease per attempt.
//!
//! Per kind, three sorted sets (`wait` by priority then age, `delayed` by
//! due time, `active` by lease deadline) and one small hash per live job.
//! Every move is one Lua script on one kind's keys (one Cluster slot):
//!
//! - `enqueue`: once per job (idempotent, so the sweeper may repeat it).
//! - `pull`: promotes due delayed jobs, pops up to N by priority, gives each
//!   a fresh lease token and counts the attempt.
//! - `renew`: extends a worker's leases in one call; reports leases lost and
//!   cancels asked for.
//! - `ack` / `retry` / `release`: only with the lease token, so an attempt
//!   that lost its lease cannot move the job.
//! - `touch`: checks and renews one lease (for a holder that keeps nothing
//!   between calls), keeping the attempt's next chunk `seq`.
//! - `reclaim`: takes back jobs whose lease lapsed and queues them again
//!   (marked exhausted when out of attempts, so the next taker fails them).
//! - `cancel`: removes a waiting job, or flags a running one and tells its
//!   worker on the kind's channel.
//!
//! Workers wait for work on the kind's channel (`n` on every enqueue), with
//! a bounded wait, instead of polling.

pub mod keys;
mod reply;

use std::sync::Arc;

use fred::prelude::*;
use fred::types::scripts::Script;

use self::reply::{array, int, string};
use super::store::QueueEntry;

/// What went wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis could not be reached or did not answer in time.
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
    /// Redis refused a command.
    #[error("redis error: {0}")]
    Redis(String),
    /// A script answered in an unexpected shape.
    #[error("unexpected reply from the {0} script")]
    Reply(&'static str),
}

impl QueueError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }
}

impl From<fred::error::Error> for QueueError {
    fn from(e: fred::error::Error) -> Self {
        match crate::bus::BusError::from(e) {
            crate::bus::BusError::Unavailable(m) => QueueError::Unavailable(m),
            other => QueueError::Redis(other.to_string()),
        }
    }
}

/// One leased attempt, as `pull` hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub kind: String,
    pub id: String,
    pub token: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    pub timeout_ms: u64,
    /// A cancel was asked for before this worker took the job.
    pub cancel: bool,
    /// Every attempt was used (by lapsed leases): fail the job, do not run it.
    pub exhausted: bool,
}

/// What one `pull` got.
#[derive(Debug, Clone, Default)]
pub struct Pulled {
    pub jobs: Vec<Leased>,
    /// Milliseconds until the next delayed job is due, if there is one.
    pub next_delayed_ms: Option<u64>,
}

/// What a cancel found in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was waiting or delayed and is gone from the queue.
    Removed,
    /// The job is running; its worker was told.
    Signalled,
    /// The queue does not hold the job.
    Absent,
}

/// A job taken back from a lapsed lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclaimed {
    pub id: String,
    /// The attempt whose lease lapsed.
    pub attempt: u32,
    pub exhausted: bool,
    /// The worker that held the lease.
    pub worker: String,
    /// A cancel was asked for (the next taker ends the job `cancelled`).
    pub cancel: bool,
}

/// One lease as [`Queue::touch`] found it (and renewed it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touched {
    /// A cancel was asked for.
    pub cancel: bool,
    /// The attempt ran past its timeout.
    pub timed_out: bool,
    pub attempt: u32,
    pub max_attempts: u32,
    pub timeout_ms: u64,
    /// The attempt's next chunk `seq`.
    pub seq: u64,
    /// Milliseconds since the lease began.
    pub ran_ms: u64,
}

/// How many jobs of one kind are where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Depth {
    pub waiting: u64,
    pub delayed: u64,
    pub running: u64,
}

/// A message on a kind's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A job may be ready.
    Work,
    /// This job was asked to stop.
    Cancel(String),
}

impl Signal {
    pub fn parse(message: &str) -> Option<Self> {
        match message {
            "n" => Some(Signal::Work),
            m => m
                .strip_prefix("c:")
                .map(|id| Signal::Cancel(id.to_string())),
        }
    }
}

struct Scripts {
    enqueue: Script,
    pull: Script,
    renew: Script,
    ack: Script,
    retry: Script,
    cancel: Script,
    reclaim: Script,
    stats: Script,
    touch: Script,
}

/// Handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    client: Client,
    sharded: bool,
    scripts: Arc<Scripts>,
}

impl Queue {
    /// A queue on `client`; `sharded` publishes with `SPUBLISH` (Redis Cluster).
    pub fn new(client: Client, sharded: bool) -> Self {
        let s = |lua: &'static str| Script::from_lua(lua);
        let scripts = Scripts {
            enqueue: s(include_str!("lua/enqueue.lua")),
            pull: s(include_str!("lua/pull.lua")),
            renew: s(include_str!("lua/renew.lua")),
            ack: s(include_str!("lua/ack.lua")),
            retry: s(include_str!("lua/retry.lua")),
            cancel: s(include_str!("lua/cancel.lua")),
            reclaim: s(include_str!("lua/reclaim.lua")),
            stats: s(include_str!("lua/stats.lua")),
            touch: s(include_str!("lua/touch.lua")),
        };
        Self {
            client,
            sharded,
            scripts: Arc::new(scripts),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether workers should subscribe with `SSUBSCRIBE`.
    pub fn sharded(&self) -> bool {
        self.sharded
    }

    fn publish_op(&self) -> &'static str {
        if self.sharded {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    fn check_connected(&self) -> Result<(), QueueError> {
        if self.client.is_connected() {
            Ok(())
        } else {
            Err(QueueError::Unavailable("not connected".into()))
        }
    }

    /// Enqueues a job; `false` when the queue already holds it.
    pub async fn enqueue(&self, e: &QueueEntry) -> Result<bool, QueueError> {
        self.check_connected()?;
        let k = &e.kind;
        let keys = vec![keys::job(k, &e.id), keys::wait(k), keys::delayed(k)];
        let args: Vec<Value> = vec![
            e.id.as_str().into(),
            (e.priority as i64).into(),
            (e.max_attempts as i64).into(),
            (e.timeout_ms as i64).into(),
            (e.delay_ms as i64).into(),
            (e.attempts as i64).into(),
            keys::events(k).into(),
            self.publish_op().into(),
            e.owner.as_str().into(),
        ];
        let added: i64 = self
            .scripts
            .enqueue
            .evalsha_with_reload(&self.client, keys, args)
            .await?;
        Ok(added == 1)
    }

    /// Takes up to `n` jobs of a kind, each with a lease of `lease_ms` held
    /// by `worker`; with `per_owner` > 0, skips jobs whose owner already has
    /// that many of the kind's jobs running (they wait for a later pull).
    pub async fn pull(
        &self,
        kind: &str,
        worker: &str,
        lease_ms: u64,
        n: usize,
        per_owner: u32,
    ) -> Result<Pulled, QueueError> {
        self.check_connected()?;
        let keys = vec![
            keys::wait(kind),
            keys::delayed(kind),
            keys::active(kind),
            keys::owners(kind),
        ];
        let mut args: Vec<Value> = vec![
            keys::job_prefix(kind).into(),
            (lease_ms as i64).into(),
            worker.into(),
            (per_owner as i64).into(),
        ];
        args.extend((0..n.max(1)).map(|_| Value::from(super::new_token())));
        let reply: Value = self
            .scripts
            .pull
            .evalsha_with_reload(&self.client, keys, args)
            .await?;
        reply::pulled(kind, reply).ok_or(QueueError::Reply("pull"))
    }

    /// Renews the leases `(id, token)` of one kind; returns the ids whose
    /// lease was lost and the ids asked to stop.
    pub async fn renew(
        &self,
        kind: &str,
        leases: &[(String, String)],
        lease_ms: u64,
    ) -> Result<(Vec<String>, Vec<String>), QueueError> {
        self.check_connected()?;
        let mut args: Vec<Value> = vec![keys::job_prefix(kind).into(), (lease_ms as i64).into()];
        for (id, token) in leases {
            args.push(id.as_str().into());
            args.push(token.as_str().into());
        }
        let reply: Value = self
            .scripts
            .renew
            .evalsha_with_reload(&self.client, vec![keys::active(kind)], args)
            .await?;
        let mut parts = array(reply).ok_or(QueueError::Reply("renew"))?.into_iter();
        let ids = |v: Option<Value>| -> Vec<String> {
            v.and_then(array)
                .unwrap_or_default()
                .into_iter()
                .filter_map(string)
                .collect()
        };
        let lost = ids(parts.next());
        let cancel = ids(parts.next());
        Ok((lost, cancel))
    }

    fn job_keys(kind: &str, id: &str) -> Vec<String> {
        vec![
            keys::active(kind),
            keys::wait(kind),
            keys::delayed(kind),
            keys::job(kind, id),
            keys::owners(kind),
        ]
    }

    /// Removes an ended job from the queue; with a token, only if that lease
    /// still holds it. `true` when removed.
    pub async fn ack(&self, kind: &str, id: &str, token: Option<&str>) -> Result<bool, QueueError> {
        self.check_connected()?;
        let args: Vec<Value> = vec![
            id.into(),
            token.unwrap_or("").into(),
            keys::events(kind).into(),
            self.publish_op().into(),
        ];
        let n: i64 = self
            .scripts
            .ack
            .evalsha_with_reload(&self.client, Self::job_keys(kind, id), args)
            .await?;
        Ok(n == 1)
    }

    /// Puts a leased job back to run again after `delay_ms`; `false` when the lease was lost.
    pub async fn retry(
        &self,
        kind: &str,
        id: &str,
        token: &str,
        delay_ms: u64,
    ) -> Result<bool, QueueError> {
        self.give_back(kind, id, token, delay_ms, "retry").await
    }

    /// Gives a leased job back at once without counting the attempt.
    pub async fn release(&self, kind: &str, id: &str, token: &str) -> Result<bool, QueueError> {
        self.give_back(kind, id, token, 0, "release").await
    }

    async fn give_back(
        &self,
        kind: &str,
        id: &str,
        token: &str,
        delay_ms: u64,
        mode: &str,
    ) -> Result<bool, QueueError> {
        self.check_connected()?;
        let args: Vec<Value> = vec![
            id.into(),
            token.into(),
            (delay_ms as i64).into(),
            mode.into(),
            keys::events(kind).into(),
            self.publish_op().into(),
        ];
        let n: i64 = self
            .scripts
            .retry
            .evalsha_with_reload(&self.client, Self::job_keys(kind, id), args)
            .await?;
        Ok(n == 1)
    }

    /// Cancels a job in the queue (see [`CancelOutcome`]).
    pub async fn cancel(&self, kind: &str, id: &str) -> Result<CancelOutcome, QueueError> {
        self.check_connected()?;
        let args: Vec<Value> = vec![
            id.into(),
            keys::events(kind).into(),
            self.publish_op().into(),
        ];
        let out: String = self
            .scripts
            .cancel
            .evalsha_with_reload(&self.client, Self::job_keys(kind, id), args)
            .await?;
        match out.as_str() {
            "removed" => Ok(CancelOutcome::Removed),
            "signalled" => Ok(CancelOutcome::Signalled),
            "absent" => Ok(CancelOutcome::Absent),
            _ => Err(QueueError::Reply("cancel")),
        }
    }

    /// Takes back up to `max` jobs of a kind whose lease lapsed.
    pub async fn reclaim(&self, kind: &str, max: usize) -> Result<Vec<Reclaimed>, QueueError> {
        self.check_connected()?;
        let keys = vec![keys::active(kind), keys::wait(kind), keys::owners(kind)];
        let args: Vec<Value> = vec![
            keys::job_prefix(kind).into(),
            (max.max(1) as i64).into(),
            keys::events(kind).into(),
            self.publish_op().into(),
        ];
        let reply: Value = self
            .scripts
            .reclaim
            .evalsha_with_reload(&self.client, keys, args)
            .await?;
        let mut out = Vec::new();
        for item in array(reply).ok_or(QueueError::Reply("reclaim"))? {
            let mut f = array(item).ok_or(QueueError::Reply("reclaim"))?.into_iter();
            let (Some(id), Some(attempt), Some(ex), worker, cancel) = (
                f.next().and_then(string),
                f.next().and_then(int),
                f.next().and_then(int),
                f.next().and_then(string),
                f.next().and_then(string),
            ) else {
                return Err(QueueError::Reply("reclaim"));
            };
            out.push(Reclaimed {
                id,
                attempt: attempt.max(0) as u32,
                exhausted: ex == 1,
                worker: worker.unwrap_or_default(),
                cancel: cancel.as_deref() == Some("1"),
            });
        }
        Ok(out)
    }

    /// Checks that `token` still holds job `id`'s lease and renews it for
    /// `lease_ms`, recording the attempt's next chunk seq if given; `None`
    /// when the lease is not held (nothing changed).
    pub async fn touch(
        &self,
        kind: &str,
        id: &str,
        token: &str,
        lease_ms: u64,
        next_seq: Option<u64>,
    ) -> Result<Option<Touched>, QueueError> {
        self.check_connected()?;
        let keys = vec![keys::active(kind), keys::job(kind, id)];
        let args: Vec<Value> = vec![
            id.into(),
            token.into(),
            (lease_ms as i64).into(),
            next_seq.map_or(-1, |s| s as i64).into(),
        ];
        let reply: Value = self
            .scripts
            .touch
            .evalsha_with_reload(&self.client, keys, args)
            .await?;
        reply::touched(reply).ok_or(QueueError::Reply("touch"))
    }

    /// How many jobs of a kind wait, are delayed, and run.
    pub async fn depth(&self, kind: &str) -> Result<Depth, QueueError> {
        self.check_connected()?;
        let keys = vec![keys::wait(kind), keys::delayed(kind), keys::active(kind)];
        let counts: Vec<i64> = self
            .scripts
            .stats
            .evalsha_with_reload(&self.client, keys, Vec::<Value>::new())
            .await?;
        let n = |i: usize| counts.get(i).copied().unwrap_or(0).max(0) as u64;
        Ok(Depth {
            waiting: n(0),
            delayed: n(1),
            running: n(2),
        })
    }

    /// Whether the queue holds a job (in any of its sets).
    pub async fn holds(&self, kind: &str, id: &str) -> Result<bool, QueueError> {
        self.check_connected()?;
        let n: i64 = self.client.exists(keys::job(kind, id)).await?;
        Ok(n == 1)
    }

    /// Records kinds some worker runs, so gateways accept jobs of them.
    pub async fn register_kinds(&self, kinds: &[String]) -> Result<(), QueueError> {
        if kinds.is_empty() {
            return Ok(());
        }
        self.check_connected()?;
        let _: i64 = self.client.sadd(keys::KINDS, kinds.to_vec()).await?;
        Ok(())
    }

    /// Kinds workers have registered.
    pub async fn registered_kinds(&self) -> Result<Vec<String>, QueueError> {
        self.check_connected()?;
        Ok(self.client.smembers(keys::KINDS).await?)
    }
}
