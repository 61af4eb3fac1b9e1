//! Publishing job events through the bus.
//!
//! Every event goes to `job:{id}`; state events (`job.queued`, `job.started`,
//! `job.completed`, `job.failed`, `job.cancelled`) also go to `user:{owner}`
//! and `jobs`. A state event is retried for a few seconds when Redis
//! blinks, since it is published only once.

use std::time::Duration;

use serde_json::{json, Value};

use super::model::JobRecord;
use crate::bus::{Bus, BusError, Published};
use crate::topic::Topic;

/// The job event types.
pub mod types {
    pub const QUEUED: &str = "job.queued";
    pub const STARTED: &str = "job.started";
    pub const PROGRESS: &str = "job.progress";
    pub const LOG: &str = "job.log";
    pub const CHUNK: &str = "job.chunk";
    pub const RETRYING: &str = "job.retrying";
    pub const COMPLETED: &str = "job.completed";
    pub const FAILED: &str = "job.failed";
    pub const CANCELLED: &str = "job.cancelled";
}

/// Largest `result` carried whole by `job.completed`, in bytes of JSON;
/// larger ones are summarised (fetch the whole with `GET /v1/jobs/{id}`).
pub const MAX_EVENT_RESULT: usize = 16 * 1024;

/// How long a state event keeps being retried while Redis is away.
const STATE_RETRY_FOR: Duration = Duration::from_secs(5);

/// Which job a state event is about.
#[derive(Debug, Clone, Copy)]
pub struct JobRef<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub owner: &'a str,
}

impl<'a> JobRef<'a> {
    pub fn new(id: &'a str, kind: &'a str, owner: &'a str) -> Self {
        Self { id, kind, owner }
    }

    pub fn of(job: &'a JobRecord) -> Self {
        Self::new(&job.id, &job.kind, &job.owner)
    }
}

/// How a job ended, as its terminal event tells it.
#[derive(Debug, Clone, Copy)]
pub enum Ending<'a> {
    /// `job.completed` `{"result"}` (summarised when large).
    Completed { result: &'a Value },
    /// `job.failed` `{"error","attempts"}`.
    Failed { error: &'a str, attempts: u32 },
    /// `job.cancelled` `{"reason"}`.
    Cancelled { reason: &'a str },
}

impl Ending<'_> {
    pub fn ty(&self) -> &'static str {
        match self {
            Ending::Completed { .. } => types::COMPLETED,
            Ending::Failed { .. } => types::FAILED,
            Ending::Cancelled { .. } => types::CANCELLED,
        }
    }

    fn data(&self) -> Value {
        match self {
            Ending::Completed { result } => json!({ "result": summarise(result) }),
            Ending::Failed { error, attempts } => json!({ "error": error, "attempts": attempts }),
            Ending::Cancelled { reason } => json!({ "reason": reason }),
        }
    }
}

/// The data of a `job.log` event.
pub fn log_data(level: &str, message: String) -> Value {
    json!({ "level": level, "message": message })
}

/// The data of a `job.chunk` event.
pub fn chunk_data(seq: u64, text: String) -> Value {
    json!({ "seq": seq, "text": text })
}

/// `data` (an object) with the job's id, and its kind when given.
fn named(mut data: Value, id: &str, kind: Option<&str>) -> Value {
    if let Value::Object(map) = &mut data {
        map.insert("job_id".into(), Value::String(id.to_string()));
        if let Some(kind) = kind {
            map.insert("kind".into(), Value::String(kind.to_string()));
        }
    }
    data
}

fn raw(data: &Value) -> Result<Box<serde_json::value::RawValue>, BusError> {
    serde_json::value::to_raw_value(data).map_err(|e| BusError::Redis(e.to_string()))
}

fn job_topic(id: &str) -> Result<Topic, BusError> {
    Topic::job(id).map_err(|_| BusError::Redis(format!("job id {id} is not a valid topic")))
}

/// Publishes job events; cheap to clone.
#[derive(Clone)]
pub struct JobEvents {
    bus: Bus,
}

impl JobEvents {
    pub fn new(bus: Bus) -> Self {
        Self { bus }
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Publishes an event of type `ty` to `job:{id}` only; `data` (an
    /// object) gets the job's id as `"job_id"`.
    pub async fn job(&self, id: &str, ty: &str, data: Value) -> Result<Published, BusError> {
        let topic = job_topic(id)?;
        self.bus
            .publish(&topic, ty, &raw(&named(data, id, None))?)
            .await
    }

    /// The topics a state event of `job` goes to: `job:{id}`, `user:{owner}`, `jobs`.
    fn state_topics(job: JobRef<'_>) -> Result<Vec<Topic>, BusError> {
        let mut topics = vec![job_topic(job.id)?];
        match Topic::user(job.owner) {
            Ok(t) => topics.push(t),
            Err(_) => {
                tracing::debug!(
                    owner = job.owner,
                    "owner is not a valid topic name; no user event"
                )
            }
        }
        topics.push(Topic::new("jobs").expect("valid topic"));
        Ok(topics)
    }

    /// Publishes a state event of type `ty` about `job` to `job:{id}`,
    /// `user:{owner}` and `jobs`, retrying each for a few seconds while
    /// Redis is unavailable. `data` gets `"job_id"` and `"kind"`.
    pub async fn state(&self, job: JobRef<'_>, ty: &str, data: Value) -> Result<(), BusError> {
        self.state_within(job, ty, data, STATE_RETRY_FOR).await
    }

    async fn state_within(
        &self,
        job: JobRef<'_>,
        ty: &str,
        data: Value,
        retry_for: Duration,
    ) -> Result<(), BusError> {
        let raw = raw(&named(data, job.id, Some(job.kind)))?;
        let topics = Self::state_topics(job)?;
        // One event per topic, so the topics may be written at once: each
        // topic still gets its events in order.
        let sent = futures_util::future::join_all(
            topics
                .iter()
                .map(|topic| self.publish_retrying(topic, ty, &raw, retry_for)),
        )
        .await;
        let mut first_error = None;
        for (topic, r) in topics.iter().zip(sent) {
            if let Err(e) = r {
                tracing::warn!(topic = %topic, ty, error = %e, "job state event not published");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn publish_retrying(
        &self,
        topic: &Topic,
        ty: &str,
        raw: &serde_json::value::RawValue,
        retry_for: Duration,
    ) -> Result<Published, BusError> {
        let deadline = tokio::time::Instant::now() + retry_for;
        let mut delay = Duration::from_millis(50);
        loop {
            match self.bus.publish(topic, ty, raw).await {
                Err(e) if e.is_unavailable() && tokio::time::Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// `job.queued`, not retried (it is published while a client waits
    /// for its answer; the record is already safe).
    pub async fn queued(&self, job: &JobRecord) -> Result<(), BusError> {
        self.state_within(
            JobRef::of(job),
            types::QUEUED,
            json!({ "job": job }),
            Duration::ZERO,
        )
        .await
    }

    /// `job.started`.
    pub async fn started(
        &self,
        job: JobRef<'_>,
        attempt: u32,
        worker: &str,
    ) -> Result<(), BusError> {
        self.state(
            job,
            types::STARTED,
            json!({ "attempt": attempt, "worker": worker }),
        )
        .await
    }

    /// The terminal event of `job`, published at most once on each of its
    /// topics however many times this is called (by the writer of the end
    /// and by sweeps, even at once): each topic's publish carries the marker
    /// `end:{id}` and is skipped when the topic already has it. Retried for
    /// a few seconds while Redis is unavailable; `Ok` once every topic has it.
    pub async fn ended(&self, job: JobRef<'_>, ending: &Ending<'_>) -> Result<(), BusError> {
        let raw = raw(&named(ending.data(), job.id, Some(job.kind)))?;
        let ty = ending.ty();
        let marker = format!("end:{}", job.id);
        let topics = Self::state_topics(job)?;
        let sent = futures_util::future::join_all(
            topics
                .iter()
                .map(|topic| self.publish_once_retrying(topic, ty, &raw, &marker)),
        )
        .await;
        let mut first_error = None;
        for (topic, r) in topics.iter().zip(sent) {
            match r {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(topic = %topic, job_id = job.id, "terminal event already published; repeat skipped")
                }
                Err(e) => {
                    tracing::warn!(topic = %topic, ty, error = %e, "terminal event not published yet");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn publish_once_retrying(
        &self,
        topic: &Topic,
        ty: &str,
        raw: &serde_json::value::RawValue,
        marker: &str,
    ) -> Result<bool, BusError> {
        let deadline = tokio::time::Instant::now() + STATE_RETRY_FOR;
        let mut delay = Duration::from_millis(50);
        loop {
            match self.bus.publish_once(topic, ty, raw, marker).await {
                Err(e) if e.is_unavailable() && tokio::time::Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                other => return other.map(|(_, fresh)| fresh),
            }
        }
    }

    /// `job.retrying` (to `job:{id}` only).
    pub async fn retrying(
        &self,
        id: &str,
        attempt: u32,
        error: &str,
        retry_in_ms: u64,
    ) -> Result<(), BusError> {
        let data = json!({ "attempt": attempt, "error": error, "retry_in_ms": retry_in_ms });
        self.job(id, types::RETRYING, data).await.map(|_| ())
    }
}

/// A result small enough for an event: the result itself, or its small
/// top-level fields plus `"truncated": true`.
pub fn summarise(result: &Value) -> Value {
    let size = serde_json::to_vec(result)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size <= MAX_EVENT_RESULT {
        return result.clone();
    }
    let mut out = serde_json::Map::new();
    if let Value::Object(map) = result {
        let mut budget = MAX_EVENT_RESULT / 2;
        for (k, v) in map {
            let len = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
            if len <= 1024 && len + k.len() < budget {
                budget -= len + k.len();
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out.insert("truncated".into(), Value::Bool(true));
    out.insert("result_bytes".into(), json!(size));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_data_names_its_job_and_state_events_their_kind() {
        let d = named(json!({"percent": 5}), "j1", None);
        assert_eq!(d, json!({"percent": 5, "job_id": "j1"}));
        let d = named(json!({"reason": "x"}), "j1", Some("sleep"));
        assert_eq!(d, json!({"reason": "x", "job_id": "j1", "kind": "sleep"}));
    }

    #[test]
    fn small_results_travel_whole_and_large_ones_are_summarised() {
        let small = json!({"matches": 3});
        assert_eq!(summarise(&small), small);
        let big = json!({"matches": 3, "samples": vec!["x".repeat(100); 1000]});
        let s = summarise(&big);
        assert_eq!(s["matches"], 3);
        assert_eq!(s["truncated"], true);
        assert!(s.get("samples").is_none());
    }
}
