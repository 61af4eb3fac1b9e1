//! Job records: insert, read, list, and every state transition as one
//! conditional `UPDATE`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{rfc3339, Store, StoreError};
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
    /// idempotency key (`false`).
    pub async fn insert_job(&self, job: &NewJob) -> Result<(JobRecord, bool), StoreError> {
        let conn = self.conn().await?;
        let sql = format!(
            "INSERT INTO jobs (id, kind, owner, state, payload, priority, max_attempts, timeout_ms, delay_ms, idempotency_key)
             VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9)
             ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING {RECORD_COLUMNS}"
        );
        let row = conn
            .query_opt(
                &sql,
                &[
                    &job.id,
                    &job.kind,
                    &job.owner,
                    &job.payload,
                    &job.priority,
                    &(job.max_attempts as i32),
                    &(job.timeout_ms as i64),
                    &(job.delay_ms as i64),
                    &job.idempotency_key,
                ],
            )
            .await?;
        if let Some(row) = row {
            return Ok((record(&row)?, true));
        }
        let sql =
            format!("SELECT {RECORD_COLUMNS} FROM jobs WHERE owner = $1 AND idempotency_key = $2");
        let row = conn
            .query_one(&sql, &[&job.owner, &job.idempotency_key])
            .await?;
        Ok((record(&row)?, false))
    }

    /// Notes that jobs are in the Redis queue.
    pub async fn mark_enqueued(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let conn = self.conn().await?;
        conn.execute(
            "UPDATE jobs SET enqueued = true WHERE id = ANY($1) AND NOT enqueued",
            &[&ids],
        )
        .await?;
        Ok(())
    }

    pub async fn get_job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let conn = self.conn().await?;
        let sql = format!("SELECT {RECORD_COLUMNS} FROM jobs WHERE id = $1");
        conn.query_opt(&sql, &[&id])
            .await?
            .map(|r| record(&r))
            .transpose()
    }

    pub async fn job_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn().await?;
        Ok(conn
            .query_opt("SELECT owner FROM jobs WHERE id = $1", &[&id])
            .await?
            .map(|r| r.get(0)))
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
    /// has ended (or never existed): then `None`.
    pub async fn start_attempt(
        &self,
        id: &str,
        token: &str,
        attempt: u32,
        worker: &str,
    ) -> Result<Option<Started>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "UPDATE jobs SET state = 'running', attempts = $3, lease_token = $2, worker = $4,
                        started_at = now(), updated_at = now(), error = NULL
                 WHERE id = $1 AND state IN ('queued', 'running')
                 RETURNING kind, owner, payload, max_attempts, cancel_requested_at IS NOT NULL AS cancel, created_at",
                &[&id, &token, &(attempt as i32), &worker],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Started {
            kind: row.try_get("kind")?,
            owner: row.try_get("owner")?,
            payload: row.try_get("payload")?,
            max_attempts: row.try_get::<_, i32>("max_attempts")?.max(1) as u32,
            cancel_requested: row.try_get("cancel")?,
            created_at: row.try_get("created_at")?,
        }))
    }

    /// Writes a terminal state, once: only while the job is live and, when a
    /// token is given, only for the attempt holding it. Returns the owner,
    /// the record and the attempts made when this call ended the job.
    pub async fn finish(
        &self,
        id: &str,
        token: Option<&str>,
        end: &Terminal,
        progress: Option<&Value>,
    ) -> Result<Option<JobRecord>, StoreError> {
        let (result, error): (Option<&Value>, Option<&str>) = match end {
            Terminal::Completed { result } => (Some(result), None),
            Terminal::Failed { error } => (None, Some(error)),
            Terminal::Cancelled { reason } => (None, Some(reason)),
        };
        let dead = matches!(end, Terminal::Failed { .. });
        let conn = self.conn().await?;
        let sql = format!(
            "UPDATE jobs SET state = $2, result = $3, error = $4, dead = $5, progress = COALESCE($6, progress),
                    finished_at = now(), updated_at = now(), lease_token = NULL
             WHERE id = $1 AND state IN ('queued', 'running') AND ($7::text IS NULL OR lease_token = $7)
             RETURNING {RECORD_COLUMNS}"
        );
        let row = conn
            .query_opt(
                &sql,
                &[
                    &id,
                    &end.state().as_str(),
                    &result,
                    &error,
                    &dead,
                    &progress,
                    &token,
                ],
            )
            .await?;
        row.map(|r| record(&r)).transpose()
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
        let n = conn
            .execute(
                "UPDATE jobs SET state = 'queued', error = $3, lease_token = NULL, updated_at = now()
                 WHERE id = $1 AND state = 'running' AND lease_token = $2",
                &[&id, &token, &error],
            )
            .await?;
        Ok(n == 1)
    }

    /// Gives a running attempt back without counting it (worker shutdown).
    pub async fn release(&self, id: &str, token: &str) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                "UPDATE jobs SET state = 'queued', attempts = GREATEST(attempts - 1, 0), lease_token = NULL, updated_at = now()
                 WHERE id = $1 AND state = 'running' AND lease_token = $2",
                &[&id, &token],
            )
            .await?;
        Ok(n == 1)
    }

    /// Cancels a job that is still `queued`; the record when this call did it.
    pub async fn cancel_queued(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        let conn = self.conn().await?;
        let sql = format!(
            "UPDATE jobs SET state = 'cancelled', error = $2, finished_at = now(), updated_at = now(), lease_token = NULL
             WHERE id = $1 AND state = 'queued' RETURNING {RECORD_COLUMNS}"
        );
        conn.query_opt(&sql, &[&id, &reason])
            .await?
            .map(|r| record(&r))
            .transpose()
    }

    /// Notes that a running job was asked to stop; `false` when it is not running.
    pub async fn request_cancel(&self, id: &str) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                "UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, now()), updated_at = now()
                 WHERE id = $1 AND state = 'running'",
                &[&id],
            )
            .await?;
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
        conn.execute(
            "UPDATE jobs AS j SET progress = v.p, updated_at = now()
             FROM unnest($1::text[], $2::jsonb[]) AS v(id, p)
             WHERE j.id = v.id AND j.state = 'running'",
            &[&ids, &values],
        )
        .await?;
        Ok(())
    }
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
