//! Job records: insert, read, list, and every state transition as one
//! conditional `UPDATE`. The hot ones (insert, start, end, enqueue notes)
//! are batched: concurrent calls share one statement over `unnest` arrays.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::batch::{fail_all, BatchSettings, Batcher};
use super::{rfc3339, Core, Store, StoreError};
use crate::jobs::model::{JobRecord, JobState, NewJob};

pub(super) const RECORD_COLUMNS: &str = "id, kind, state, owner, payload, progress, attempts, max_attempts, result, error, created_at, started_at, finished_at";

pub(super) fn record(row: &Row) -> Result<JobRecord, StoreError> {
    let state: String = row.try_get("state")?;
    let ts = |name: &str| -> Result<Option<String>, StoreError> {
        Ok(row.try_get::<_, Option<DateTime<Utc>>>(name)?.map(rfc3339))
    };
    Ok(JobRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Db(format!("unknown state {state}")))?,
        owner: row.try_get("owner")?,
        payload: row.try_get("payload")?,
        progress: row.try_get("progress")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        result: row.try_get("result")?,
        error: row.try_get("error")?,
        created_at: ts("created_at")?.unwrap_or_default(),
        started_at: ts("started_at")?,
        finished_at: ts("finished_at")?,
    })
}

/// What the queue needs to (re-)enqueue a recorded job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: String,
    pub kind: String,
    pub priority: i32,
    pub max_attempts: u32,
    pub timeout_ms: u64,
    /// Delay left before the job may run.
    pub delay_ms: u64,
    /// Attempts already made.
    pub attempts: u32,
}

impl QueueEntry {
    pub fn new(job: &NewJob) -> Self {
        Self {
            id: job.id.clone(),
            kind: job.kind.clone(),
            priority: job.priority,
            max_attempts: job.max_attempts,
            timeout_ms: job.timeout_ms,
            delay_ms: job.delay_ms,
            attempts: 0,
        }
    }

    pub(super) fn from_row(row: &Row) -> Result<Self, StoreError> {
        let created: DateTime<Utc> = row.try_get("created_at")?;
        let delay: i64 = row.try_get("delay_ms")?;
        let due = created + chrono::Duration::milliseconds(delay);
        let left = (due - Utc::now()).num_milliseconds().max(0) as u64;
        let attempts: i32 = row.try_get("attempts")?;
        Ok(Self {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            priority: row.try_get("priority")?,
            max_attempts: row.try_get::<_, i32>("max_attempts")?.max(1) as u32,
            timeout_ms: row.try_get::<_, i64>("timeout_ms")?.max(1) as u64,
            delay_ms: left,
            attempts: attempts.max(0) as u32,
        })
    }
}

pub(super) const ENTRY_COLUMNS: &str =
    "id, kind, priority, max_attempts, timeout_ms, delay_ms, attempts, created_at, updated_at";

/// What a worker gets when it starts an attempt.
#[derive(Debug, Clone)]
pub struct Started {
    pub kind: String,
    pub owner: String,
    pub payload: Value,
    pub max_attempts: u32,
    /// A cancel was asked for while the job was not running anywhere.
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
}

/// How a job ends.
#[derive(Debug, Clone)]
pub enum Terminal {
    Completed { result: Value },
    Failed { error: String },
    Cancelled { reason: String },
}

impl Terminal {
    /// The `result` and `error` columns of this end.
    pub fn columns(&self) -> (Option<&Value>, Option<&str>) {
        match self {
            Terminal::Completed { result } => (Some(result), None),
            Terminal::Failed { error } => (None, Some(error)),
            Terminal::Cancelled { reason } => (None, Some(reason)),
        }
    }

    pub fn state(&self) -> JobState {
        match self {
            Terminal::Completed { .. } => JobState::Completed,
            Terminal::Failed { .. } => JobState::Failed,
            Terminal::Cancelled { .. } => JobState::Cancelled,
        }
    }
}

/// Filters of `GET /v1/jobs`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this owner's jobs (`None` for admins).
    pub owner: Option<String>,
    pub state: Option<JobState>,
    pub kind: Option<String>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// A keyset position: the last (time, id) a page showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.at.timestamp_micros(), self.id))
    }

    pub fn decode(s: &str) -> Option<Self> {
        if s.len() > 512 {
            return None;
        }
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let (micros, id) = text.split_once('|')?;
        Some(Self {
            at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.to_string(),
        })
    }
}

impl Store {
    /// Records a new job, or returns the owner's earlier job with the same
    /// idempotency key (`false`). Concurrent calls share one statement.
    pub async fn insert_job(&self, job: &NewJob) -> Result<(JobRecord, bool), StoreError> {
        self.batches.insert.call(job.clone()).await
    }

    /// Notes that jobs are in the Redis queue.
    pub async fn mark_enqueued(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(MARK_ENQUEUED).await?;
        conn.execute(&stmt, &[&ids]).await?;
        Ok(())
    }

    /// Notes, in the background and batched with others, that a job is in
    /// the Redis queue. Nothing waits for it: a note that is never written
    /// (queue full, PostgreSQL away, process gone) only makes the sweep
    /// enqueue the job again, which the queue ignores for a job it holds.
    pub fn mark_enqueued_soon(&self, id: &str) {
        if !self.batches.mark.offer(id.to_string()) {
            tracing::debug!(
                job_id = id,
                "enqueue note dropped (queue full); the sweep will check the job"
            );
        }
    }

    pub async fn get_job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!("SELECT {RECORD_COLUMNS} FROM jobs WHERE id = $1"))
            .await?;
        conn.query_opt(&stmt, &[&id])
            .await?
            .map(|r| record(&r))
            .transpose()
    }

    pub async fn job_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached("SELECT owner FROM jobs WHERE id = $1")
            .await?;
        Ok(conn.query_opt(&stmt, &[&id]).await?.map(|r| r.get(0)))
    }

    /// A page of jobs, newest first, and the cursor of the next page.
    pub async fn list_jobs(
        &self,
        f: &ListFilter,
    ) -> Result<(Vec<JobRecord>, Option<String>), StoreError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut add = |clause: &str, p: Box<dyn ToSql + Sync + Send>| {
            params.push(p);
            clauses.push(clause.replace('?', &format!("${}", params.len())));
        };
        if let Some(o) = &f.owner {
            add("owner = ?", Box::new(o.clone()));
        }
        if let Some(s) = f.state {
            add("state = ?", Box::new(s.as_str().to_string()));
        }
        if let Some(k) = &f.kind {
            add("kind = ?", Box::new(k.clone()));
        }
        if let Some(c) = &f.cursor {
            params.push(Box::new(c.at));
            params.push(Box::new(c.id.clone()));
            clauses.push(format!(
                "(created_at, id) < (${}, ${})",
                params.len() - 1,
                params.len()
            ));
        }
        let limit = f.limit.clamp(1, 500);
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM jobs {filter} ORDER BY created_at DESC, id DESC LIMIT {}",
            limit + 1
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let conn = self.conn().await?;
        let rows = conn.query(&sql, &refs).await?;
        let more = rows.len() > limit;
        let mut jobs = Vec::with_capacity(limit);
        let mut last = None;
        for row in rows.iter().take(limit) {
            jobs.push(record(row)?);
            last = Some(Cursor {
                at: row.try_get("created_at")?,
                id: row.try_get("id")?,
            });
        }
        Ok((jobs, if more { last.map(|c| c.encode()) } else { None }))
    }

    /// Starts an attempt: the job becomes `running` under `token`, unless it
    /// has ended (or never existed): then `None`. Concurrent calls share one
    /// statement.
    pub async fn start_attempt(
        &self,
        id: &str,
        token: &str,
        attempt: u32,
        worker: &str,
    ) -> Result<Option<Started>, StoreError> {
        self.batches
            .start
            .call(StartReq {
                id: id.to_string(),
                token: token.to_string(),
                attempt: attempt as i32,
                worker: worker.to_string(),
            })
            .await
    }

    /// Writes a terminal state, once: only while the job is live and, when a
    /// token is given, only for the attempt holding it. Returns the record
    /// when this call ended the job. A cancelled job keeps the reason its
    /// cancel gave, if any. The end's event is queued in the outbox by the
    /// same statement (see [`Store::claim_outbox`]).
    pub async fn finish(
        &self,
        id: &str,
        token: Option<&str>,
        end: &Terminal,
        progress: Option<&Value>,
    ) -> Result<Option<JobRecord>, StoreError> {
        let (result, error) = end.columns();
        let dead = matches!(end, Terminal::Failed { .. });
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "WITH ended AS (
                    UPDATE jobs SET state = $2, result = $3, dead = $5, progress = COALESCE($6, progress),
                           error = CASE WHEN $2 = 'cancelled' THEN COALESCE(cancel_reason, $4) ELSE $4 END,
                           finished_at = now(), updated_at = now(), lease_token = NULL
                    WHERE id = $1 AND state IN ('queued', 'running') AND ($7::text IS NULL OR lease_token = $7)
                    RETURNING {RECORD_COLUMNS}
                 ), {}
                 SELECT * FROM ended",
                outbox_insert(8)
            ))
            .await?;
        let row = conn
            .query_opt(
                &stmt,
                &[
                    &id,
                    &end.state().as_str(),
                    &result,
                    &error,
                    &dead,
                    &progress,
                    &token,
                    &outbox_claim_ms(),
                ],
            )
            .await?;
        row.map(|r| record(&r)).transpose()
    }

    /// [`Store::finish`] for the worker's hot path: the same conditional
    /// update, batched with concurrent calls (each learns whether its own
    /// row changed), answering only the owner and the attempts.
    pub async fn end_attempt(
        &self,
        id: &str,
        token: Option<&str>,
        end: &Terminal,
        progress: Option<&Value>,
    ) -> Result<Option<Ended>, StoreError> {
        self.batches
            .finish
            .call(FinishReq {
                id: id.to_string(),
                token: token.map(str::to_string),
                end: end.clone(),
                progress: progress.cloned(),
            })
            .await
    }

    /// Puts a running attempt's job back to `queued` for a later retry (its
    /// error kept); `false` when the attempt no longer owns the job.
    pub async fn retry_later(
        &self,
        id: &str,
        token: &str,
        error: &str,
    ) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "UPDATE jobs SET state = 'queued', error = $3, lease_token = NULL, updated_at = now()
                 WHERE id = $1 AND state = 'running' AND lease_token = $2",
            )
            .await?;
        let n = conn.execute(&stmt, &[&id, &token, &error]).await?;
        Ok(n == 1)
    }

    /// Gives a running attempt back without counting it (worker shutdown).
    pub async fn release(&self, id: &str, token: &str) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "UPDATE jobs SET state = 'queued', attempts = GREATEST(attempts - 1, 0), lease_token = NULL, updated_at = now()
                 WHERE id = $1 AND state = 'running' AND lease_token = $2",
            )
            .await?;
        let n = conn.execute(&stmt, &[&id, &token]).await?;
        Ok(n == 1)
    }

    /// Cancels a job that is still `queued`; the record when this call did
    /// it (its event queued in the outbox by the same statement).
    pub async fn cancel_queued(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "WITH ended AS (
                    UPDATE jobs SET state = 'cancelled', error = $2, finished_at = now(), updated_at = now(), lease_token = NULL
                    WHERE id = $1 AND state = 'queued' RETURNING {RECORD_COLUMNS}
                 ), {}
                 SELECT * FROM ended",
                outbox_insert(3)
            ))
            .await?;
        conn.query_opt(&stmt, &[&id, &reason, &outbox_claim_ms()])
            .await?
            .map(|r| record(&r))
            .transpose()
    }

    /// Notes that a running job was asked to stop, and why (the first
    /// reason given is kept: the job ends with it); `false` when it is not running.
    pub async fn request_cancel(&self, id: &str, reason: &str) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, now()),
                        cancel_reason = COALESCE(cancel_reason, $2), updated_at = now()
                 WHERE id = $1 AND state = 'running'",
            )
            .await?;
        let n = conn.execute(&stmt, &[&id, &reason]).await?;
        Ok(n == 1)
    }

    /// Writes the latest progress of running jobs (one statement for all).
    pub async fn save_progress(&self, batch: &[(String, Value)]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = batch.iter().map(|(id, _)| id.as_str()).collect();
        let values: Vec<&Value> = batch.iter().map(|(_, v)| v).collect();
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "UPDATE jobs AS j SET progress = v.p, updated_at = now()
                 FROM unnest($1::text[], $2::jsonb[]) AS v(id, p)
                 WHERE j.id = v.id AND j.state = 'running'",
            )
            .await?;
        conn.execute(&stmt, &[&ids, &values]).await?;
        Ok(())
    }
}

const MARK_ENQUEUED: &str = "UPDATE jobs SET enqueued = true WHERE id = ANY($1) AND NOT enqueued";

/// What the worker learns when its terminal write ended the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub owner: String,
    /// Attempts made.
    pub attempts: u32,
    /// The `error` column as written: a failure's error, or a cancel's
    /// reason (the one the cancel request gave, when there was one).
    pub error: Option<String>,
}

/// A statement part queueing the event of every row of `ended` in the
/// outbox, claimed by the writer for [`super::OUTBOX_CLAIM`] (parameter
/// `$param` of the statement: the claim in milliseconds).
fn outbox_insert(param: usize) -> String {
    format!(
        "outboxed AS (
            INSERT INTO job_outbox (job_id, claimed_until)
            SELECT id, now() + ${param}::int8 * interval '1 millisecond' FROM ended
         )"
    )
}

/// [`super::OUTBOX_CLAIM`] in milliseconds, as a statement parameter.
fn outbox_claim_ms() -> i64 {
    super::OUTBOX_CLAIM.as_millis() as i64
}

/// The group-commit batchers of one store (see `batch`).
pub(super) struct Batches {
    insert: Batcher<NewJob, (JobRecord, bool)>,
    start: Batcher<StartReq, Option<Started>>,
    finish: Batcher<FinishReq, Option<Ended>>,
    mark: Batcher<String, ()>,
}

/// Bounds of the batchers. The hot ones wait at most a millisecond for
/// company; the enqueue notes wait longer, since nobody waits on them and a
/// job that started meanwhile needs no note (starting it notes it).
const INSERTS: BatchSettings = BatchSettings {
    name: "insert jobs",
    queue: 4096,
    max_rows: 256,
    linger: Duration::from_millis(1),
    in_flight: 4,
};
const STARTS: BatchSettings = BatchSettings {
    name: "start attempts",
    queue: 4096,
    max_rows: 256,
    linger: Duration::from_millis(1),
    in_flight: 4,
};
const FINISHES: BatchSettings = BatchSettings {
    name: "end attempts",
    queue: 4096,
    max_rows: 256,
    linger: Duration::from_millis(1),
    in_flight: 4,
};
const MARKS: BatchSettings = BatchSettings {
    name: "enqueue notes",
    queue: 65536,
    max_rows: 5000,
    linger: Duration::from_secs(1),
    in_flight: 1,
};

impl Batches {
    pub(super) fn new(core: &Arc<Core>) -> Self {
        Self {
            insert: Batcher::new(core.clone(), INSERTS, |c, r| Box::pin(insert_many(c, r))),
            start: Batcher::new(core.clone(), STARTS, |c, r| Box::pin(start_many(c, r))),
            finish: Batcher::new(core.clone(), FINISHES, |c, r| Box::pin(finish_many(c, r))),
            mark: Batcher::new(core.clone(), MARKS, |c, r| Box::pin(mark_many(c, r))),
        }
    }
}

/// Splits a batch into the indices of the first request of each key and
/// those of the repeats, which must go in a statement of their own.
fn first_of_each<T>(items: &[T], key: impl Fn(&T) -> &str) -> (Vec<usize>, Vec<usize>) {
    let mut seen: HashSet<&str> = HashSet::with_capacity(items.len());
    let (mut firsts, mut repeats) = (Vec::new(), Vec::new());
    for (i, item) in items.iter().enumerate() {
        if seen.insert(key(item)) {
            firsts.push(i);
        } else {
            repeats.push(i);
        }
    }
    (firsts, repeats)
}

const INSERT_MANY: &str = "INSERT INTO jobs (id, kind, owner, state, payload, priority, max_attempts, timeout_ms, delay_ms, idempotency_key)
     SELECT v.id, v.kind, v.owner, 'queued', v.payload, v.priority, v.max_attempts, v.timeout_ms, v.delay_ms, v.ikey
     FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::int4[], $6::int4[], $7::int8[], $8::int8[], $9::text[])
          AS v(id, kind, owner, payload, priority, max_attempts, timeout_ms, delay_ms, ikey)
     ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
     RETURNING id, created_at";

/// The new job's record, as the insert wrote it.
fn new_record(job: &NewJob, created_at: DateTime<Utc>) -> JobRecord {
    JobRecord {
        id: job.id.clone(),
        kind: job.kind.clone(),
        state: JobState::Queued,
        owner: job.owner.clone(),
        payload: job.payload.clone(),
        progress: None,
        attempts: 0,
        max_attempts: job.max_attempts as i32,
        result: None,
        error: None,
        created_at: rfc3339(created_at),
        started_at: None,
        finished_at: None,
    }
}

async fn insert_many(
    core: Arc<Core>,
    jobs: Vec<NewJob>,
) -> Vec<Result<(JobRecord, bool), StoreError>> {
    match insert_batch(&core, &jobs).await {
        Ok(out) => out.into_iter().map(Ok).collect(),
        Err(e @ StoreError::Db(_)) if jobs.len() > 1 => {
            tracing::debug!(error = %e, rows = jobs.len(), "batched insert refused; inserting one by one");
            let mut out = Vec::with_capacity(jobs.len());
            for job in &jobs {
                out.push(
                    insert_batch(&core, std::slice::from_ref(job))
                        .await
                        .map(|mut v| v.remove(0)),
                );
            }
            out
        }
        Err(e) => fail_all(jobs.len(), &e),
    }
}

/// Inserts `jobs` in one statement; a job whose idempotency key its owner
/// used before (or earlier in the same batch) gets the existing record.
async fn insert_batch(core: &Core, jobs: &[NewJob]) -> Result<Vec<(JobRecord, bool)>, StoreError> {
    let conn = core.conn().await?;
    let stmt = conn.prepare_cached(INSERT_MANY).await?;
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
    let owners: Vec<&str> = jobs.iter().map(|j| j.owner.as_str()).collect();
    let payloads: Vec<&Value> = jobs.iter().map(|j| &j.payload).collect();
    let priorities: Vec<i32> = jobs.iter().map(|j| j.priority).collect();
    let max_attempts: Vec<i32> = jobs.iter().map(|j| j.max_attempts as i32).collect();
    let timeouts: Vec<i64> = jobs.iter().map(|j| j.timeout_ms as i64).collect();
    let delays: Vec<i64> = jobs.iter().map(|j| j.delay_ms as i64).collect();
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.idempotency_key.as_deref()).collect();
    let rows = conn
        .query(
            &stmt,
            &[
                &ids,
                &kinds,
                &owners,
                &payloads,
                &priorities,
                &max_attempts,
                &timeouts,
                &delays,
                &keys,
            ],
        )
        .await?;
    let mut created: HashMap<String, DateTime<Utc>> = HashMap::with_capacity(rows.len());
    for row in &rows {
        created.insert(row.try_get("id")?, row.try_get("created_at")?);
    }
    // The rest met an earlier job with their owner's idempotency key.
    let mut existing: HashMap<(String, String), JobRecord> = HashMap::new();
    if created.len() < jobs.len() {
        let (owners, keys): (Vec<&str>, Vec<&str>) = jobs
            .iter()
            .filter(|j| !created.contains_key(&j.id))
            .filter_map(|j| Some((j.owner.as_str(), j.idempotency_key.as_deref()?)))
            .unzip();
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS}, idempotency_key FROM jobs
                 WHERE (owner, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
            ))
            .await?;
        for row in conn.query(&stmt, &[&owners, &keys]).await? {
            let key: String = row.try_get("idempotency_key")?;
            let rec = record(&row)?;
            existing.insert((rec.owner.clone(), key), rec);
        }
    }
    jobs.iter()
        .map(|j| {
            if let Some(at) = created.get(&j.id) {
                return Ok((new_record(j, *at), true));
            }
            let found = j
                .idempotency_key
                .as_ref()
                .and_then(|k| existing.get(&(j.owner.clone(), k.clone())));
            match found {
                Some(rec) => Ok((rec.clone(), false)),
                None => Err(StoreError::Db(format!(
                    "job {} was neither inserted nor found",
                    j.id
                ))),
            }
        })
        .collect()
}

/// A request to start an attempt.
pub(super) struct StartReq {
    id: String,
    token: String,
    attempt: i32,
    worker: String,
}

const START_MANY: &str = "UPDATE jobs AS j SET state = 'running', attempts = v.attempt, lease_token = v.token, worker = v.worker,
            started_at = now(), updated_at = now(), error = NULL, enqueued = true
     FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[]) AS v(id, token, attempt, worker)
     WHERE j.id = v.id AND j.state IN ('queued', 'running')
     RETURNING j.id, j.kind, j.owner, j.payload, j.max_attempts, j.cancel_requested_at IS NOT NULL AS cancel, j.created_at";

async fn start_many(
    core: Arc<Core>,
    reqs: Vec<StartReq>,
) -> Vec<Result<Option<Started>, StoreError>> {
    let (firsts, repeats) = first_of_each(&reqs, |r| r.id.as_str());
    let mut out: Vec<Option<Result<Option<Started>, StoreError>>> =
        (0..reqs.len()).map(|_| None).collect();
    for group in [firsts]
        .into_iter()
        .chain(repeats.into_iter().map(|i| vec![i]))
    {
        let part: Vec<&StartReq> = group.iter().map(|&i| &reqs[i]).collect();
        let answers = match start_batch(&core, &part).await {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => fail_all(part.len(), &e),
        };
        for (i, a) in group.into_iter().zip(answers) {
            out[i] = Some(a);
        }
    }
    out.into_iter()
        .map(|a| a.unwrap_or_else(|| Err(StoreError::Db("start: no answer".into()))))
        .collect()
}

/// Starts attempts of distinct jobs in one statement.
async fn start_batch(core: &Core, reqs: &[&StartReq]) -> Result<Vec<Option<Started>>, StoreError> {
    let conn = core.conn().await?;
    let stmt = conn.prepare_cached(START_MANY).await?;
    let ids: Vec<&str> = reqs.iter().map(|r| r.id.as_str()).collect();
    let tokens: Vec<&str> = reqs.iter().map(|r| r.token.as_str()).collect();
    let attempts: Vec<i32> = reqs.iter().map(|r| r.attempt).collect();
    let workers: Vec<&str> = reqs.iter().map(|r| r.worker.as_str()).collect();
    let rows = conn
        .query(&stmt, &[&ids, &tokens, &attempts, &workers])
        .await?;
    let mut started: HashMap<String, Started> = HashMap::with_capacity(rows.len());
    for row in &rows {
        started.insert(
            row.try_get("id")?,
            Started {
                kind: row.try_get("kind")?,
                owner: row.try_get("owner")?,
                payload: row.try_get("payload")?,
                max_attempts: row.try_get::<_, i32>("max_attempts")?.max(1) as u32,
                cancel_requested: row.try_get("cancel")?,
                created_at: row.try_get("created_at")?,
            },
        );
    }
    Ok(reqs.iter().map(|r| started.remove(&r.id)).collect())
}

/// A request to end an attempt.
pub(super) struct FinishReq {
    id: String,
    token: Option<String>,
    end: Terminal,
    progress: Option<Value>,
}

const FINISH_MANY: &str = "WITH ended AS (
        UPDATE jobs AS j SET state = v.state, result = v.result, dead = v.dead,
               error = CASE WHEN v.state = 'cancelled' THEN COALESCE(j.cancel_reason, v.error) ELSE v.error END,
               progress = COALESCE(v.progress, j.progress), finished_at = now(), updated_at = now(), lease_token = NULL
        FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::bool[], $7::jsonb[])
             AS v(id, token, state, result, error, dead, progress)
        WHERE j.id = v.id AND j.state IN ('queued', 'running') AND (v.token IS NULL OR j.lease_token = v.token)
        RETURNING j.id, j.owner, j.attempts, j.error
     ), OUTBOX
     SELECT id, owner, attempts, error FROM ended";

async fn finish_many(
    core: Arc<Core>,
    reqs: Vec<FinishReq>,
) -> Vec<Result<Option<Ended>, StoreError>> {
    // A job ended twice in one batch would match one row for both: each
    // id's first request goes in the batch, any repeat in a statement of its own.
    let (firsts, repeats) = first_of_each(&reqs, |r| r.id.as_str());
    let mut out: Vec<Option<Result<Option<Ended>, StoreError>>> =
        (0..reqs.len()).map(|_| None).collect();
    for group in [firsts]
        .into_iter()
        .chain(repeats.into_iter().map(|i| vec![i]))
    {
        let part: Vec<&FinishReq> = group.iter().map(|&i| &reqs[i]).collect();
        let answers = match finish_batch(&core, &part).await {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e @ StoreError::Db(_)) if part.len() > 1 => {
                tracing::debug!(error = %e, rows = part.len(), "batched terminal write refused; writing one by one");
                let mut one_by_one = Vec::with_capacity(part.len());
                for r in &part {
                    one_by_one.push(finish_batch(&core, &[*r]).await.map(|mut v| v.remove(0)));
                }
                one_by_one
            }
            Err(e) => fail_all(part.len(), &e),
        };
        for (i, a) in group.into_iter().zip(answers) {
            out[i] = Some(a);
        }
    }
    out.into_iter()
        .map(|a| a.unwrap_or_else(|| Err(StoreError::Db("finish: no answer".into()))))
        .collect()
}

/// Ends attempts of distinct jobs in one conditional update; each learns
/// whether its own row changed.
async fn finish_batch(core: &Core, reqs: &[&FinishReq]) -> Result<Vec<Option<Ended>>, StoreError> {
    let conn = core.conn().await?;
    let stmt = conn
        .prepare_cached(&FINISH_MANY.replace("OUTBOX", &outbox_insert(8)))
        .await?;
    let ids: Vec<&str> = reqs.iter().map(|r| r.id.as_str()).collect();
    let tokens: Vec<Option<&str>> = reqs.iter().map(|r| r.token.as_deref()).collect();
    let states: Vec<&str> = reqs.iter().map(|r| r.end.state().as_str()).collect();
    let (results, errors): (Vec<Option<&Value>>, Vec<Option<&str>>) =
        reqs.iter().map(|r| r.end.columns()).unzip();
    let dead: Vec<bool> = reqs
        .iter()
        .map(|r| matches!(r.end, Terminal::Failed { .. }))
        .collect();
    let progress: Vec<Option<&Value>> = reqs.iter().map(|r| r.progress.as_ref()).collect();
    let rows = conn
        .query(
            &stmt,
            &[
                &ids,
                &tokens,
                &states,
                &results,
                &errors,
                &dead,
                &progress,
                &outbox_claim_ms(),
            ],
        )
        .await?;
    let mut ended: HashMap<String, Ended> = HashMap::with_capacity(rows.len());
    for row in &rows {
        ended.insert(
            row.try_get("id")?,
            Ended {
                owner: row.try_get("owner")?,
                attempts: row.try_get::<_, i32>("attempts")?.max(0) as u32,
                error: row.try_get("error")?,
            },
        );
    }
    Ok(reqs.iter().map(|r| ended.remove(&r.id)).collect())
}

async fn mark_many(core: Arc<Core>, ids: Vec<String>) -> Vec<Result<(), StoreError>> {
    let n = ids.len();
    let written = async {
        let conn = core.conn().await?;
        let stmt = conn.prepare_cached(MARK_ENQUEUED).await?;
        conn.execute(&stmt, &[&ids]).await?;
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(e) = &written {
        tracing::debug!(error = %e, jobs = n, "enqueue notes not written; the sweep will check those jobs");
    }
    (0..n).map(|_| Ok(())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let c = Cursor {
            at: DateTime::from_timestamp_micros(1_732_240_000_123_456).unwrap(),
            id: "0193-ab".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("!!"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("x|y")), None);
    }
}
