//! Job states, the job record of the contract, and submit requests.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a job is in its life. `completed`, `failed` and `cancelled` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// A job as the contract shows it (`GET /v1/jobs/{id}`, `job.queued`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub state: JobState,
    /// The user the job belongs to.
    pub owner: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Value,
    /// The last progress reported (`{"percent","step","message",...}`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub progress: Option<Value>,
    pub attempts: i32,
    pub max_attempts: i32,
    /// What the job returned (completed jobs).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Value>))]
    pub result: Option<Value>,
    /// Why the job failed or was cancelled.
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// Bounds on what a submit may ask for.
pub mod limits {
    /// Priorities run from -100 (last) to 100 (first); default 0.
    pub const PRIORITY: std::ops::RangeInclusive<i32> = -100..=100;
    /// Attempts a job may be given, default [`DEFAULT_MAX_ATTEMPTS`].
    pub const MAX_ATTEMPTS: std::ops::RangeInclusive<u32> = 1..=100;
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
    /// Per-attempt timeout bounds (100 ms to 24 h), default 10 minutes.
    pub const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=86_400_000;
    pub const DEFAULT_TIMEOUT_MS: u64 = 600_000;
    /// Longest delay before a job first runs: 30 days.
    pub const MAX_DELAY_MS: u64 = 30 * 86_400_000;
    /// Longest idempotency key, in bytes.
    pub const MAX_IDEMPOTENCY_KEY: usize = 200;
    /// Longest kind name.
    pub const MAX_KIND_LEN: usize = 64;
}

/// The body of `POST /v1/jobs`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// 1..=64 of `[a-z0-9_.-]`: a built-in kind or one a worker registered.
    #[cfg_attr(feature = "openapi", schema(example = "sleep"))]
    pub kind: String,
    /// A JSON object (`{}` when absent); checked against the kind.
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>, example = json!({"ms": 0, "steps": 1})))]
    pub payload: Value,
    /// -100 (last) ..= 100 (first); default 0.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = -100, maximum = 100))]
    pub priority: Option<i32>,
    /// 1..=100; default 3.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub max_attempts: Option<u32>,
    /// Per attempt, 100..=86400000; default 600000.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 100, maximum = 86_400_000))]
    pub timeout_ms: Option<u64>,
    /// Up to 30 days; default 0.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 2592000000.0))]
    pub delay_ms: Option<u64>,
    /// 1..=200 bytes; the same key from the same owner returns the first job.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub idempotency_key: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A submit request that passed validation, with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub id: String,
    pub kind: String,
    pub owner: String,
    pub payload: Value,
    pub priority: i32,
    pub max_attempts: u32,
    pub timeout_ms: u64,
    pub delay_ms: u64,
    pub idempotency_key: Option<String>,
}

/// Whether a kind name is well formed: 1..=64 of `[a-z0-9_.-]`.
pub fn valid_kind_name(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= limits::MAX_KIND_LEN
        && kind.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

impl SubmitRequest {
    /// Checks the limits and fills in defaults; the payload of built-in kinds
    /// is checked by [`crate::jobs::kinds::validate`].
    pub fn validate(self, owner: &str) -> Result<NewJob, String> {
        if !valid_kind_name(&self.kind) {
            return Err("kind must be 1..=64 characters of [a-z0-9_.-]".into());
        }
        if !self.payload.is_object() {
            return Err("payload must be a JSON object".into());
        }
        let priority = self.priority.unwrap_or(0);
        if !limits::PRIORITY.contains(&priority) {
            return Err("priority must be between -100 and 100".into());
        }
        let max_attempts = self.max_attempts.unwrap_or(limits::DEFAULT_MAX_ATTEMPTS);
        if !limits::MAX_ATTEMPTS.contains(&max_attempts) {
            return Err("max_attempts must be between 1 and 100".into());
        }
        let timeout_ms = self.timeout_ms.unwrap_or(limits::DEFAULT_TIMEOUT_MS);
        if !limits::TIMEOUT_MS.contains(&timeout_ms) {
            return Err("timeout_ms must be between 100 and 86400000".into());
        }
        let delay_ms = self.delay_ms.unwrap_or(0);
        if delay_ms > limits::MAX_DELAY_MS {
            return Err("delay_ms must be at most 30 days".into());
        }
        if let Some(key) = &self.idempotency_key {
            if key.is_empty() || key.len() > limits::MAX_IDEMPOTENCY_KEY {
                return Err("idempotency_key must be 1..=200 bytes".into());
            }
        }
        Ok(NewJob {
            id: super::new_job_id(),
            kind: self.kind,
            owner: owner.to_string(),
            payload: self.payload,
            priority,
            max_attempts,
            timeout_ms,
            delay_ms,
            idempotency_key: self.idempotency_key,
        })
    }
}

/// Progress of a running job, as carried by `job.progress` and kept in the record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// 0..=100.
    #[serde(serialize_with = "whole_if_possible")]
    pub percent: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_ms: Option<u64>,
}

impl Progress {
    /// Progress at `percent` (clamped to 0..=100, rounded to 2 decimals).
    pub fn percent(percent: f64) -> Self {
        Self {
            percent: clamp_percent(percent),
            ..Self::default()
        }
    }

    pub fn step(mut self, step: impl Into<String>) -> Self {
        self.step = Some(step.into());
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub fn counts(mut self, processed: u64, total: Option<u64>) -> Self {
        self.processed = Some(processed);
        self.total = total;
        self
    }

    pub fn eta_ms(mut self, eta_ms: u64) -> Self {
        self.eta_ms = Some(eta_ms);
        self
    }
}

fn clamp_percent(p: f64) -> f64 {
    if p.is_finite() {
        (p.clamp(0.0, 100.0) * 100.0).round() / 100.0
    } else {
        0.0
    }
}

/// Writes whole percentages as integers (`40`, not `40.0`).
fn whole_if_possible<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    let v = clamp_percent(*v);
    if v.fract() == 0.0 {
        s.serialize_u64(v as u64)
    } else {
        s.serialize_f64(v)
    }
}

/// The answer to a submit: `202` (new) or `200` (same idempotency key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accepted {
    pub id: String,
    pub state: JobState,
    /// `job:{id}`.
    pub topic: String,
    pub events_url: String,
    pub poll_url: String,
}

impl Accepted {
    pub fn new(id: &str, state: JobState) -> Self {
        Self {
            id: id.to_string(),
            state,
            topic: format!("job:{id}"),
            events_url: "/v1/ws".into(),
            poll_url: format!("/v1/poll?topics=job:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> Result<NewJob, String> {
        serde_json::from_value::<SubmitRequest>(v)
            .map_err(|e| e.to_string())?
            .validate("alice")
    }

    #[test]
    fn defaults_and_limits() {
        let j = req(serde_json::json!({"kind":"sleep"})).unwrap();
        assert_eq!(
            (j.priority, j.max_attempts, j.timeout_ms, j.delay_ms),
            (0, 3, 600_000, 0)
        );
        assert_eq!(j.payload, serde_json::json!({}));
        assert!(req(serde_json::json!({"kind":"Sleep"})).is_err());
        assert!(req(serde_json::json!({"kind":"sleep","priority":101})).is_err());
        assert!(req(serde_json::json!({"kind":"sleep","max_attempts":0})).is_err());
        assert!(req(serde_json::json!({"kind":"sleep","timeout_ms":5})).is_err());
        assert!(req(serde_json::json!({"kind":"sleep","payload":[1]})).is_err());
        assert!(req(serde_json::json!({"kind":"sleep","idempotency_key":""})).is_err());
        assert!(req(serde_json::json!({"kind":"sleep","colour":"red"})).is_err());
    }

    #[test]
    fn states_round_trip_and_know_terminals() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        assert!(JobState::Cancelled.is_terminal() && !JobState::Running.is_terminal());
    }

    #[test]
    fn progress_writes_whole_percentages_as_integers() {
        let p = serde_json::to_value(Progress::percent(40.0).step("match")).unwrap();
        assert_eq!(p, serde_json::json!({"percent":40,"step":"match"}));
        let p = serde_json::to_value(Progress::percent(100.0 / 3.0)).unwrap();
        assert_eq!(p["percent"], serde_json::json!(33.33));
        assert_eq!(Progress::percent(250.0).percent, 100.0);
    }
}
