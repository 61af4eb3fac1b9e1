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

    /// Publishes an event to `job:{id}` only.
    pub async fn job(&self, id: &str, kind: &str, data: &Value) -> Result<Published, BusError> {
        let topic = Topic::job(id)
            .map_err(|_| BusError::Redis(format!("job id {id} is not a valid topic")))?;
        let raw =
            serde_json::value::to_raw_value(data).map_err(|e| BusError::Redis(e.to_string()))?;
        self.bus.publish(&topic, kind, &raw).await
    }

    /// Publishes a state event to `job:{id}`, `user:{owner}` and `jobs`,
    /// retrying each for a few seconds while Redis is unavailable.
    pub async fn state(
        &self,
        id: &str,
        owner: &str,
        kind: &str,
        data: &Value,
    ) -> Result<(), BusError> {
        self.state_within(id, owner, kind, data, STATE_RETRY_FOR)
            .await
    }

    async fn state_within(
        &self,
        id: &str,
        owner: &str,
        kind: &str,
        data: &Value,
        retry_for: Duration,
    ) -> Result<(), BusError> {
        let raw =
            serde_json::value::to_raw_value(data).map_err(|e| BusError::Redis(e.to_string()))?;
        let mut topics = vec![Topic::job(id)
            .map_err(|_| BusError::Redis(format!("job id {id} is not a valid topic")))?];
        match Topic::user(owner) {
            Ok(t) => topics.push(t),
            Err(_) => tracing::debug!(owner, "owner is not a valid topic name; no user event"),
        }
        topics.push(Topic::new("jobs").expect("valid topic"));
        // One event per topic, so the topics may be written at once: each
        // topic still gets its events in order.
        let sent = futures_util::future::join_all(
            topics
                .iter()
                .map(|topic| self.publish_retrying(topic, kind, &raw, retry_for)),
        )
        .await;
        let mut first_error = None;
        for (topic, r) in topics.iter().zip(sent) {
            if let Err(e) = r {
                tracing::warn!(topic = %topic, kind, error = %e, "job state event not published");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn publish_retrying(
        &self,
        topic: &Topic,
        kind: &str,
        raw: &serde_json::value::RawValue,
        retry_for: Duration,
    ) -> Result<Published, BusError> {
        let deadline = tokio::time::Instant::now() + retry_for;
        let mut delay = Duration::from_millis(50);
        loop {
            match self.bus.publish(topic, kind, raw).await {
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
            &job.id,
            &job.owner,
            types::QUEUED,
            &json!({ "job": job }),
            Duration::ZERO,
        )
        .await
    }

    /// `job.started`.
    pub async fn started(
        &self,
        id: &str,
        owner: &str,
        attempt: u32,
        worker: &str,
    ) -> Result<(), BusError> {
        self.state(
            id,
            owner,
            types::STARTED,
            &json!({ "attempt": attempt, "worker": worker }),
        )
        .await
    }

    /// `job.completed`, with the result summarised when large.
    pub async fn completed(&self, id: &str, owner: &str, result: &Value) -> Result<(), BusError> {
        self.state(
            id,
            owner,
            types::COMPLETED,
            &json!({ "result": summarise(result) }),
        )
        .await
    }

    /// `job.failed`.
    pub async fn failed(
        &self,
        id: &str,
        owner: &str,
        error: &str,
        attempts: u32,
    ) -> Result<(), BusError> {
        self.state(
            id,
            owner,
            types::FAILED,
            &json!({ "error": error, "attempts": attempts }),
        )
        .await
    }

    /// `job.cancelled`.
    pub async fn cancelled(&self, id: &str, owner: &str, reason: &str) -> Result<(), BusError> {
        self.state(id, owner, types::CANCELLED, &json!({ "reason": reason }))
            .await
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
        self.job(id, types::RETRYING, &data).await.map(|_| ())
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
