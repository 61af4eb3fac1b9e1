//! The outbox of terminal events: one row per ended job whose event may not
//! have been published yet (see `migrations/V2__outbox.sql`).
//!
//! The statement that writes a terminal state also inserts the row, claimed
//! by its writer for [`OUTBOX_CLAIM`](super::OUTBOX_CLAIM). The writer
//! publishes right after its commit and then deletes the row (batched, in
//! the background: a delete never written only makes a sweep publish the
//! event again, which the publish recognises as a repeat). A sweep claims
//! rows whose claim lapsed, `FOR UPDATE SKIP LOCKED` so concurrent sweeps
//! take different rows, and deletes each only after its publish succeeded.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::batch::{BatchSettings, Batcher};
use super::{Core, Store, StoreError, OUTBOX_CLAIM};
use crate::jobs::model::JobState;

/// A statement part queueing the event of every row of `ended` in the
/// outbox, claimed by the writer for [`OUTBOX_CLAIM`] (parameter `$param`
/// of the statement: the claim in milliseconds).
pub(super) fn outbox_insert(param: usize) -> String {
    format!(
        "outboxed AS (
            INSERT INTO job_outbox (job_id, claimed_until)
            SELECT id, now() + ${param}::int8 * interval '1 millisecond' FROM ended
         )"
    )
}

/// [`OUTBOX_CLAIM`] in milliseconds, as a statement parameter.
pub(super) fn outbox_claim_ms() -> i64 {
    OUTBOX_CLAIM.as_millis() as i64
}

/// An ended job whose event is still in the outbox, as a sweep claimed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Unannounced {
    pub id: String,
    pub kind: String,
    pub owner: String,
    pub state: JobState,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub attempts: u32,
}

const CLAIM: &str = "UPDATE job_outbox AS o SET claimed_until = now() + $2::int8 * interval '1 millisecond', sweeps = o.sweeps + 1
     FROM (SELECT job_id FROM job_outbox WHERE claimed_until < now()
           ORDER BY claimed_until LIMIT $1 FOR UPDATE SKIP LOCKED) AS c, jobs AS j
     WHERE o.job_id = c.job_id AND j.id = o.job_id
     RETURNING j.id, j.kind, j.owner, j.state, j.result, j.error, j.attempts";

const DONE: &str = "DELETE FROM job_outbox WHERE job_id = ANY($1)";

/// Bounds of the batched deletes: nobody waits on them.
const DONES: BatchSettings = BatchSettings {
    name: "outbox deletes",
    queue: 65536,
    max_rows: 5000,
    linger: Duration::from_millis(100),
    in_flight: 1,
};

/// The outbox's batcher, one per store.
pub(super) struct OutboxBatch {
    done: Batcher<String, ()>,
}

impl OutboxBatch {
    pub(super) fn new(core: &Arc<Core>) -> Self {
        Self {
            done: Batcher::new(core.clone(), DONES, |c, ids| Box::pin(done_many(c, ids))),
        }
    }
}

async fn done_many(core: Arc<Core>, ids: Vec<String>) -> Vec<Result<(), StoreError>> {
    let n = ids.len();
    let written = async {
        let conn = core.conn().await?;
        let stmt = conn.prepare_cached(DONE).await?;
        conn.execute(&stmt, &[&ids]).await?;
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(e) = &written {
        tracing::debug!(error = %e, rows = n, "outbox rows not deleted; a sweep will publish those events again (as repeats)");
    }
    (0..n).map(|_| Ok(())).collect()
}

impl Store {
    /// Claims up to `limit` outbox rows whose claim lapsed, for
    /// [`OUTBOX_CLAIM`](super::OUTBOX_CLAIM), with what their event needs.
    pub async fn claim_outbox(&self, limit: i64) -> Result<Vec<Unannounced>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(CLAIM).await?;
        let claim = OUTBOX_CLAIM.as_millis() as i64;
        let rows = conn.query(&stmt, &[&limit, &claim]).await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok(Unannounced {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    owner: r.try_get("owner")?,
                    state: JobState::parse(&state)
                        .ok_or_else(|| StoreError::Db(format!("unknown state {state}")))?,
                    result: r.try_get("result")?,
                    error: r.try_get("error")?,
                    attempts: r.try_get::<_, i32>("attempts")?.max(0) as u32,
                })
            })
            .collect()
    }

    /// Deletes outbox rows whose event was published.
    pub async fn outbox_done(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(DONE).await?;
        conn.execute(&stmt, &[&ids]).await?;
        Ok(())
    }

    /// Deletes, in the background and batched with others, the outbox row
    /// of a job whose event its writer published. Nothing waits for it.
    pub fn outbox_done_soon(&self, id: &str) {
        if !self.outbox.done.offer(id.to_string()) {
            tracing::debug!(
                job_id = id,
                "outbox delete dropped (queue full); a sweep will repeat the event harmlessly"
            );
        }
    }

    /// Rows in the outbox (ended jobs whose event may not be out yet).
    pub async fn outbox_len(&self) -> Result<i64, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_one("SELECT count(*) FROM job_outbox", &[])
            .await?;
        Ok(row.get(0))
    }
}
