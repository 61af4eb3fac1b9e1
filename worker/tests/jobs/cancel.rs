//! Cancelling running and queued jobs.

use std::time::Duration;

use relay_shared::jobs::service::CancelResult;
use relay_shared::jobs::JobState;
use relay_testkit::RedisTarget;
use serde_json::json;

use crate::support::{terminal_events, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_and_queued_jobs_are_cancelled_once() {
    cancel_running_and_queued(Harness::start().await).await;
}

/// The scenario itself, on one Redis or a cluster (see `cluster`).
pub(crate) async fn cancel_running_and_queued<R: RedisTarget>(h: Harness<R>) {
    let _worker = h.worker().spawn().await;

    // Running: the worker is told, the handler stops, the job ends cancelled.
    let running = h
        .submit("sleep", json!({"ms": 60000, "steps": 60}), json!({}))
        .await;
    h.wait_event(&running, "job.started", Duration::from_secs(10))
        .await;
    let r = h.jobs.cancel(&running, "cancelled by alice").await.unwrap();
    assert!(
        matches!(r, CancelResult::Stopping(ref j) if j.state == JobState::Running),
        "{r:?}"
    );
    let job = h.wait_end(&running, Duration::from_secs(10)).await;
    assert_eq!(job.state, JobState::Cancelled, "{job:?}");
    let cancelled = h
        .wait_event(&running, "job.cancelled", Duration::from_secs(2))
        .await;
    assert_eq!(
        cancelled["reason"], "cancelled by alice",
        "the reason given to cancel"
    );
    assert_eq!(job.error.as_deref(), Some("cancelled by alice"));
    // A second cancel finds it ended (the gateway answers 409).
    assert!(matches!(
        h.jobs.cancel(&running, "again").await.unwrap(),
        CancelResult::AlreadyEnded(_)
    ));

    // Queued (delayed): cancelled at once, and gone from the queue.
    let queued = h
        .submit(
            "sleep",
            json!({"ms": 0, "steps": 1}),
            json!({"delay_ms": 600000}),
        )
        .await;
    let r = h.jobs.cancel(&queued, "cancelled by alice").await.unwrap();
    assert!(
        matches!(r, CancelResult::Cancelled(ref j) if j.state == JobState::Cancelled),
        "{r:?}"
    );
    assert_eq!(h.job(&queued).await.state, JobState::Cancelled);
    assert!(!h.jobs.queue.holds("sleep", &queued).await.unwrap());
    assert!(matches!(
        h.jobs.cancel(&queued, "again").await.unwrap(),
        CancelResult::AlreadyEnded(_)
    ));
    assert!(matches!(
        h.jobs.cancel("no-such-job", "x").await.unwrap(),
        CancelResult::NotFound
    ));

    for id in [&running, &queued] {
        assert_eq!(terminal_events(&h.events(id).await), vec!["job.cancelled"]);
    }
    assert_eq!(h.jobs.queue.depth("sleep").await.unwrap().running, 0);
}
