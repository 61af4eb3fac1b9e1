//! Retries, dead letters, timeouts, delays, idempotency and the sweep.

use std::time::Duration;

use chrono::DateTime;
use relay_shared::jobs::model::SubmitRequest;
use relay_shared::jobs::JobState;
use relay_testkit::RedisTarget;
use serde_json::json;

use crate::support::{terminal_events, Harness, OWNER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_dead_letters_timeouts_delays_and_idempotency() {
    lifecycle_and_idempotency(Harness::start().await).await;
}

/// The scenario itself, on one Redis or a cluster (see `cluster`).
pub(crate) async fn lifecycle_and_idempotency<R: RedisTarget>(h: Harness<R>) {
    let _worker = h.worker().spawn().await;

    let retried = h
        .submit(
            "sleep",
            json!({"ms": 0, "steps": 1, "fail_attempts": 2}),
            json!({"max_attempts": 3}),
        )
        .await;
    let exhausted = h
        .submit(
            "sleep",
            json!({"ms": 0, "steps": 1, "fail_attempts": 5}),
            json!({"max_attempts": 2}),
        )
        .await;
    let slow = h
        .submit(
            "sleep",
            json!({"ms": 30000, "steps": 2}),
            json!({"max_attempts": 1, "timeout_ms": 500}),
        )
        .await;
    let delayed = h
        .submit(
            "sleep",
            json!({"ms": 0, "steps": 1}),
            json!({"delay_ms": 1500}),
        )
        .await;

    // Retries, then success: attempts 3, two job.retrying events with backoff, one terminal.
    let job = h.wait_end(&retried, Duration::from_secs(20)).await;
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Completed, 3),
        "{job:?}"
    );
    let events = h.events(&retried).await;
    let retrying: Vec<_> = events
        .iter()
        .filter(|(t, _)| t == "job.retrying")
        .map(|(_, d)| d.clone())
        .collect();
    assert_eq!(retrying.len(), 2, "{events:?}");
    assert_eq!(retrying[0]["attempt"], 1);
    assert!(retrying[0]["retry_in_ms"].as_u64().unwrap() >= 500);
    assert!(retrying[1]["retry_in_ms"].as_u64().unwrap() >= 1000);
    assert_eq!(terminal_events(&events), vec!["job.completed"]);
    assert!(job.result.as_ref().unwrap()["slept_ms"].is_u64());

    // Retries exhausted: failed, in the dead-letter list, re-drivable as a new job.
    let job = h.wait_end(&exhausted, Duration::from_secs(20)).await;
    assert_eq!((job.state, job.attempts), (JobState::Failed, 2), "{job:?}");
    let failed = h
        .wait_event(&exhausted, "job.failed", Duration::from_secs(2))
        .await;
    assert_eq!(failed["attempts"], 2);
    assert!(
        failed["error"].as_str().unwrap().contains("on purpose"),
        "{failed}"
    );
    let (dead, _) = h
        .jobs
        .store
        .dead_letters(Some("sleep"), 50, None)
        .await
        .unwrap();
    assert!(dead.iter().any(|j| j.id == exhausted), "{dead:?}");
    let again = h
        .jobs
        .redrive(&exhausted)
        .await
        .unwrap()
        .expect("a dead letter re-drives");
    assert_ne!(again.id, exhausted);
    assert_eq!(
        (again.state, again.payload.clone()),
        (JobState::Queued, job.payload.clone())
    );
    let (dead, _) = h
        .jobs
        .store
        .dead_letters(Some("sleep"), 50, None)
        .await
        .unwrap();
    assert!(!dead.iter().any(|j| j.id == exhausted));
    assert!(h.jobs.redrive(&exhausted).await.unwrap().is_none());
    assert_eq!(
        h.job(&exhausted).await.state,
        JobState::Failed,
        "the old job keeps its one terminal state"
    );

    // A timeout stops the handler; with one attempt the job fails.
    let job = h.wait_end(&slow, Duration::from_secs(10)).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .contains("timed out after 500 ms"),
        "{job:?}"
    );
    let ran = DateTime::parse_from_rfc3339(job.finished_at.as_ref().unwrap()).unwrap()
        - DateTime::parse_from_rfc3339(job.started_at.as_ref().unwrap()).unwrap();
    assert!(
        ran.num_milliseconds() < 5000,
        "the timeout stopped the work: {ran}"
    );

    // A delayed job runs no earlier than its delay.
    let job = h.wait_end(&delayed, Duration::from_secs(10)).await;
    assert_eq!(job.state, JobState::Completed);
    let waited = DateTime::parse_from_rfc3339(job.started_at.as_ref().unwrap()).unwrap()
        - DateTime::parse_from_rfc3339(&job.created_at).unwrap();
    assert!(
        waited.num_milliseconds() >= 1500,
        "started {waited} after submit"
    );

    // The same idempotency key from the same owner gives the first job; another owner gets a new one.
    let extra = json!({"idempotency_key": "order-42"});
    let (first, created) = h
        .submit_as(OWNER, "sleep", json!({"ms": 0, "steps": 1}), extra.clone())
        .await;
    let (second, created_again) = h
        .submit_as(OWNER, "sleep", json!({"ms": 0, "steps": 1}), extra.clone())
        .await;
    let (other, other_created) = h
        .submit_as("bob", "sleep", json!({"ms": 0, "steps": 1}), extra)
        .await;
    assert!(created && !created_again && other_created);
    assert_eq!(first.id, second.id);
    assert_ne!(first.id, other.id);
    let job = h.wait_end(&first.id, Duration::from_secs(10)).await;
    assert_eq!(
        terminal_events(&h.events(&job.id).await),
        vec!["job.completed"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_but_never_enqueued_job_is_swept_and_runs() {
    let h = Harness::start().await;
    let _worker = h.worker().spawn().await;
    // Recorded as a gateway would before dying: no enqueue.
    let req: SubmitRequest =
        serde_json::from_value(json!({"kind": "sleep", "payload": {"ms": 0, "steps": 1}})).unwrap();
    let job = req.validate(OWNER).unwrap();
    let (record, created) = h.jobs.store.insert_job(&job).await.unwrap();
    assert!(created);
    assert!(!h.jobs.queue.holds("sleep", &record.id).await.unwrap());
    assert_eq!(h.jobs.queue.depth("sleep").await.unwrap().waiting, 0);

    let swept = h.jobs.sweep_not_enqueued(Duration::ZERO).await.unwrap();
    assert_eq!(swept, 1);
    let done = h.wait_end(&record.id, Duration::from_secs(10)).await;
    assert_eq!((done.state, done.attempts), (JobState::Completed, 1));
    assert_eq!(
        h.jobs.sweep_not_enqueued(Duration::ZERO).await.unwrap(),
        0,
        "marked enqueued"
    );

    // A job the queue lost (Redis flushed) is found by the lost-job sweep.
    let lost = h
        .submit(
            "sleep",
            json!({"ms": 0, "steps": 1}),
            json!({"delay_ms": 600000}),
        )
        .await;
    h.redis.cli(&["FLUSHALL"]);
    let mut cursor = None;
    assert_eq!(
        h.jobs
            .sweep_lost(&mut cursor, Duration::ZERO, 100)
            .await
            .unwrap(),
        1
    );
    assert!(h.jobs.queue.holds("sleep", &lost).await.unwrap());
}
