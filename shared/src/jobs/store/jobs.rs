//! Job records: reading and listing them, and every state transition as
//! one conditional `UPDATE`. The hot writes (insert, start, end, enqueue
//! notes) go through the group-commit writers of [`super::writers`].

use serde_json::Value;
use tokio_postgres::types::ToSql;

use super::outbox::{outbox_claim_ms, outbox_insert};
use super::records::{record, Cursor, Ended, ListFilter, Started, Terminal, RECORD_COLUMNS};
use super::writers::{FinishReq, StartReq, MARK_ENQUEUED};
use super::{Store, StoreError};
use crate::jobs::model::{JobRecord, NewJob};

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
