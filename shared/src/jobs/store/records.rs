//! What the job store reads and writes: job records as rows, queue
//! entries, attempt starts and ends, list filters and their cursors.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;

use super::{rfc3339, StoreError};
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
    /// Whose job it is (kept in the queue for the per-owner limit).
    pub owner: String,
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
            owner: job.owner.clone(),
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
            owner: row.try_get("owner")?,
            priority: row.try_get("priority")?,
            max_attempts: row.try_get::<_, i32>("max_attempts")?.max(1) as u32,
            timeout_ms: row.try_get::<_, i64>("timeout_ms")?.max(1) as u64,
            delay_ms: left,
            attempts: attempts.max(0) as u32,
        })
    }
}

pub(super) const ENTRY_COLUMNS: &str =
    "id, kind, owner, priority, max_attempts, timeout_ms, delay_ms, attempts, created_at, updated_at";

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
