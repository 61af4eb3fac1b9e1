//! The store's side of the sweeps and the dead-letter list.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::records::{record, ENTRY_COLUMNS, RECORD_COLUMNS};
use super::{Cursor, QueueEntry, Store, StoreError};
use crate::jobs::model::JobRecord;

impl Store {
    /// Jobs recorded more than `older_than` ago and never enqueued.
    pub async fn not_enqueued(
        &self,
        older_than: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let conn = self.conn().await?;
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM jobs WHERE state = 'queued' AND NOT enqueued AND created_at < $1 ORDER BY created_at LIMIT $2"
        );
        let rows = conn.query(&sql, &[&older_than, &limit]).await?;
        rows.iter().map(QueueEntry::from_row).collect()
    }

    /// Live (queued or running) jobs not updated since `older_than`, after
    /// a keyset position in (updated_at, id) order; for checking them
    /// against Redis. Whether a job was noted as enqueued does not matter
    /// here: the note is written in the background, and a live job the
    /// queue does not hold is lost either way.
    pub async fn stale_live(
        &self,
        older_than: DateTime<Utc>,
        after: Option<&Cursor>,
        limit: i64,
    ) -> Result<Vec<(QueueEntry, Cursor)>, StoreError> {
        let conn = self.conn().await?;
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        let (at, id) = after.map(|c| (c.at, c.id.as_str())).unwrap_or((epoch, ""));
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM jobs WHERE state IN ('queued', 'running')
             AND updated_at < $1 AND (updated_at, id) > ($2, $3) ORDER BY updated_at, id LIMIT $4"
        );
        let rows = conn.query(&sql, &[&older_than, &at, &id, &limit]).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    QueueEntry::from_row(r)?,
                    Cursor {
                        at: r.try_get("updated_at")?,
                        id: r.try_get("id")?,
                    },
                ))
            })
            .collect()
    }

    /// A page of the dead-letter list, most recently failed first.
    pub async fn dead_letters(
        &self,
        kind: Option<&str>,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> Result<(Vec<JobRecord>, Option<String>), StoreError> {
        let conn = self.conn().await?;
        let limit = limit.clamp(1, 500);
        let at = cursor.map(|c| c.at);
        let id = cursor.map(|c| c.id.as_str()).unwrap_or("");
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM jobs WHERE dead AND ($1::text IS NULL OR kind = $1)
             AND ($2::timestamptz IS NULL OR (finished_at, id) < ($2, $3))
             ORDER BY finished_at DESC, id DESC LIMIT {}",
            limit + 1
        );
        let rows = conn.query(&sql, &[&kind, &at, &id]).await?;
        let more = rows.len() > limit;
        let mut jobs = Vec::new();
        let mut last = None;
        for row in rows.iter().take(limit) {
            jobs.push(record(row)?);
            if let Some(at) = row.try_get::<_, Option<DateTime<Utc>>>("finished_at")? {
                last = Some(Cursor {
                    at,
                    id: row.try_get("id")?,
                });
            }
        }
        Ok((jobs, if more { last.map(|c| c.encode()) } else { None }))
    }

    /// Dead letters per kind.
    pub async fn dead_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT kind, count(*) FROM jobs WHERE dead GROUP BY kind",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Re-drives a dead letter: takes it off the list and records a new job
    /// with the same kind, owner and payload (the failed job keeps its one
    /// terminal state). `None` when `id` is not a dead letter.
    pub async fn redrive(&self, id: &str) -> Result<Option<(JobRecord, QueueEntry)>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let Some(old) = tx
            .query_opt(
                "UPDATE jobs SET dead = false, updated_at = now() WHERE id = $1 AND dead
                 RETURNING kind, owner, payload, priority, max_attempts, timeout_ms",
                &[&id],
            )
            .await?
        else {
            return Ok(None);
        };
        let new_id = crate::jobs::new_job_id();
        let sql = format!(
            "INSERT INTO jobs (id, kind, owner, state, payload, priority, max_attempts, timeout_ms, redriven_from)
             VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8) RETURNING {RECORD_COLUMNS}, {ENTRY_COLUMNS}"
        );
        let kind: String = old.get("kind");
        let owner: String = old.get("owner");
        let payload: Value = old.get("payload");
        let priority: i32 = old.get("priority");
        let max_attempts: i32 = old.get("max_attempts");
        let timeout_ms: i64 = old.get("timeout_ms");
        let row = tx
            .query_one(
                &sql,
                &[
                    &new_id,
                    &kind,
                    &owner,
                    &payload,
                    &priority,
                    &max_attempts,
                    &timeout_ms,
                    &id,
                ],
            )
            .await?;
        let rec = record(&row)?;
        let entry = QueueEntry::from_row(&row)?;
        tx.commit().await?;
        Ok(Some((rec, entry)))
    }
}
