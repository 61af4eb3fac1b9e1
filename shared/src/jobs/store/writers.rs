//! The store's group-commit writers: concurrent inserts, attempt starts,
//! attempt ends and enqueue notes share one statement over `unnest`
//! arrays (see `batch`); each caller still learns its own row's fate.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::batch::{fail_all, BatchSettings, Batcher};
use super::outbox::{outbox_claim_ms, outbox_insert};
use super::records::{record, Ended, Started, Terminal, RECORD_COLUMNS};
use super::{rfc3339, Core, StoreError};
use crate::jobs::model::{JobRecord, JobState, NewJob};

pub(super) const MARK_ENQUEUED: &str =
    "UPDATE jobs SET enqueued = true WHERE id = ANY($1) AND NOT enqueued";

/// The group-commit batchers of one store (see `batch`).
pub(super) struct Batches {
    pub(super) insert: Batcher<NewJob, (JobRecord, bool)>,
    pub(super) start: Batcher<StartReq, Option<Started>>,
    pub(super) finish: Batcher<FinishReq, Option<Ended>>,
    pub(super) mark: Batcher<String, ()>,
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

/// Writes a batch of requests to jobs named by `id`, in statements that
/// never name a job twice (a job named twice would match one row for both):
/// each id's first request goes in one statement, any repeat in one of its
/// own. Answers are in request order.
async fn by_distinct_id<'a, R, T, Fut>(
    reqs: &'a [R],
    id: impl Fn(&R) -> &str,
    write: impl Fn(Vec<&'a R>) -> Fut,
) -> Vec<Result<T, StoreError>>
where
    Fut: Future<Output = Vec<Result<T, StoreError>>>,
{
    let (firsts, repeats) = first_of_each(reqs, id);
    let mut out: Vec<Option<Result<T, StoreError>>> = (0..reqs.len()).map(|_| None).collect();
    for group in [firsts]
        .into_iter()
        .chain(repeats.into_iter().map(|i| vec![i]))
    {
        let part: Vec<&R> = group.iter().map(|&i| &reqs[i]).collect();
        for (i, a) in group.into_iter().zip(write(part).await) {
            out[i] = Some(a);
        }
    }
    out.into_iter()
        .map(|a| a.unwrap_or_else(|| Err(StoreError::Db("batched write: no answer".into()))))
        .collect()
}

/// Writes `reqs` in one statement; when PostgreSQL refuses it (one bad row
/// spoils the statement), writes each alone, so only the bad one fails.
async fn whole_or_one_by_one<'a, R, T, Fut>(
    what: &str,
    reqs: Vec<&'a R>,
    write: impl Fn(Vec<&'a R>) -> Fut,
) -> Vec<Result<T, StoreError>>
where
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let n = reqs.len();
    match write(reqs.clone()).await {
        Ok(v) => v.into_iter().map(Ok).collect(),
        Err(e @ StoreError::Db(_)) if n > 1 => {
            tracing::debug!(error = %e, rows = n, "batched {what} refused; writing one by one");
            let mut out = Vec::with_capacity(n);
            for r in reqs {
                out.push(write(vec![r]).await.map(|mut v| v.remove(0)));
            }
            out
        }
        Err(e) => fail_all(n, &e),
    }
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
    let all: Vec<&NewJob> = jobs.iter().collect();
    whole_or_one_by_one("insert", all, |part| insert_batch(&core, part)).await
}

/// Inserts `jobs` in one statement; a job whose idempotency key its owner
/// used before (or earlier in the same batch) gets the existing record.
async fn insert_batch(
    core: &Core,
    jobs: Vec<&NewJob>,
) -> Result<Vec<(JobRecord, bool)>, StoreError> {
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
    pub(super) id: String,
    pub(super) token: String,
    pub(super) attempt: i32,
    pub(super) worker: String,
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
    let core = &core;
    by_distinct_id(
        &reqs,
        |r| r.id.as_str(),
        |part| async move {
            let n = part.len();
            match start_batch(core, &part).await {
                Ok(v) => v.into_iter().map(Ok).collect(),
                Err(e) => fail_all(n, &e),
            }
        },
    )
    .await
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
    pub(super) id: String,
    pub(super) token: Option<String>,
    pub(super) end: Terminal,
    pub(super) progress: Option<Value>,
}

/// The terminal writes, with their outbox rows (`OUTBOX`, see
/// [`outbox_insert`]) in the same statement.
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
    by_distinct_id(
        &reqs,
        |r| r.id.as_str(),
        |part| whole_or_one_by_one("terminal write", part, |p| finish_batch(&core, p)),
    )
    .await
}

/// Ends attempts of distinct jobs in one conditional update; each learns
/// whether its own row changed.
async fn finish_batch(
    core: &Core,
    reqs: Vec<&FinishReq>,
) -> Result<Vec<Option<Ended>>, StoreError> {
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
