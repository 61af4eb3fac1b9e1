//! The shared attempt engine as a holder that keeps nothing between calls
//! (a worker over HTTP) uses it: leases, events with chunk `seq` kept
//! across calls, fencing of stale and foreign leases, retry, cancel,
//! timeout and lapse, on a real Redis and PostgreSQL.

use std::time::Duration;

use relay_shared::jobs::attempt::{
    AttemptError, Engine, EngineSettings, Finished, Lease, RemoteEvent,
};
use relay_shared::jobs::service::CancelResult;
use relay_shared::jobs::JobState;
use relay_testkit::eventually;
use serde_json::json;

use crate::support::{terminal_events, Harness};

const T: Duration = Duration::from_secs(20);
const KIND: &str = "ocr";

fn engine(h: &Harness) -> Engine {
    Engine::new(
        h.jobs.store.clone(),
        h.jobs.queue.clone(),
        h.jobs.events.clone(),
        EngineSettings::remote(Duration::from_secs(2)),
    )
}

/// Leases the one job of [`KIND`] that is due, waiting for it.
async fn lease_one(e: &Engine) -> relay_shared::jobs::attempt::Attempt {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let mut got = e.lease(KIND, "ocr-py-1", 4).await.unwrap();
        if let Some(a) = got.attempts.pop() {
            assert!(got.attempts.is_empty());
            return a;
        }
        assert!(tokio::time::Instant::now() < deadline, "no job to lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn chunk(text: &str) -> RemoteEvent {
    RemoteEvent::Chunk(text.into())
}

fn stale(lease: &Lease) -> Lease {
    Lease {
        token: "0123456789abcdef0123456789abcdef".into(),
        ..lease.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_holder_follows_the_rules_of_an_attempt() {
    let h = Harness::start().await;
    let e = engine(&h);
    let id = h
        .submit(KIND, json!({"page": 1}), json!({"max_attempts": 2}))
        .await;

    // Leased and started: job.started names the remote worker.
    let a = lease_one(&e).await;
    assert_eq!((a.lease.id.as_str(), a.lease.attempt), (id.as_str(), 1));
    assert_eq!(a.payload, json!({"page": 1}));
    let started = h.wait_event(&id, "job.started", T).await;
    assert_eq!(started["worker"], "ocr-py-1");
    let lease = Lease::decode(&id, &a.lease.encode()).expect("the lease string round-trips");

    // Events in order across calls; chunk seq from 0 with no gap.
    let progress = RemoteEvent::parse("job.progress", json!({"percent": 10, "page": 1})).unwrap();
    let log = RemoteEvent::parse("job.log", json!({"message": "reading"})).unwrap();
    let beat = e
        .publish(&lease, vec![progress, chunk("ab"), log])
        .await
        .unwrap();
    assert!(!beat.cancel);
    assert_eq!(beat.lease_ms, 2000);
    e.publish(&lease, vec![chunk("cd"), chunk("ef")])
        .await
        .unwrap();
    let events = h.events(&id).await;
    let chunks: Vec<_> = events
        .iter()
        .filter(|(t, _)| t == "job.chunk")
        .map(|(_, d)| {
            (
                d["seq"].as_u64().unwrap(),
                d["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        chunks,
        vec![(0, "ab".into()), (1, "cd".into()), (2, "ef".into())]
    );
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "job.queued",
            "job.started",
            "job.progress",
            "job.chunk",
            "job.log",
            "job.chunk",
            "job.chunk"
        ]
    );
    assert_eq!(
        events[2].1["page"], 1,
        "the holder's own progress fields are kept"
    );
    assert!(RemoteEvent::parse("job.completed", json!({})).is_err());
    assert!(RemoteEvent::parse("job.progress", json!({"percent": 101})).is_err());

    // A foreign lease changes nothing.
    let before = h.events(&id).await.len();
    let foreign = stale(&lease);
    assert!(matches!(
        e.publish(&foreign, vec![chunk("x")]).await,
        Err(AttemptError::LeaseLost)
    ));
    assert!(matches!(
        e.heartbeat(&foreign).await,
        Err(AttemptError::LeaseLost)
    ));
    assert!(matches!(
        e.complete(&foreign, json!({})).await,
        Err(AttemptError::LeaseLost)
    ));
    assert_eq!(h.events(&id).await.len(), before);
    assert_eq!(h.job(&id).await.state, JobState::Running);

    // A retryable failure: retried with backoff; the old lease is dead.
    let r = e
        .fail(&lease, "page unreadable".into(), true)
        .await
        .unwrap();
    assert!(
        matches!(r, Finished::Retrying { retry_in_ms } if retry_in_ms >= 500),
        "{r:?}"
    );
    assert!(matches!(
        e.complete(&lease, json!({})).await,
        Err(AttemptError::LeaseLost)
    ));
    let retrying = h.wait_event(&id, "job.retrying", T).await;
    assert_eq!(retrying["error"], "page unreadable");

    // The second attempt's chunks start again at 0; it completes once.
    let a2 = lease_one(&e).await;
    assert_eq!(a2.lease.attempt, 2);
    e.publish(&a2.lease, vec![chunk("again")]).await.unwrap();
    let last_chunk = h
        .events(&id)
        .await
        .into_iter()
        .rev()
        .find(|(t, _)| t == "job.chunk")
        .unwrap();
    assert_eq!(last_chunk.1["seq"], 0);
    let done = e
        .complete(&a2.lease, json!({"text": "hello"}))
        .await
        .unwrap();
    assert_eq!(done, Finished::Ended(JobState::Completed));
    assert!(matches!(
        e.complete(&a2.lease, json!({})).await,
        Err(AttemptError::LeaseLost)
    ));
    let job = h.job(&id).await;
    assert_eq!((job.state, job.attempts), (JobState::Completed, 2));
    eventually!(
        T,
        terminal_events(&h.events(&id).await) == vec!["job.completed"]
    );
    assert!(!h.jobs.queue.holds(KIND, &id).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_holder_is_told_to_stop_on_cancel_and_timeout_and_loses_a_lapsed_lease() {
    let h = Harness::start().await;
    let e = engine(&h);

    // Cancel: the next heartbeat says stop; `cancelled` ends it with the reason given.
    let id = h.submit(KIND, json!({}), json!({})).await;
    let a = lease_one(&e).await;
    assert!(!e.heartbeat(&a.lease).await.unwrap().cancel);
    let r = h.jobs.cancel(&id, "cancelled by alice").await.unwrap();
    assert!(matches!(r, CancelResult::Stopping(_)), "{r:?}");
    assert!(e.heartbeat(&a.lease).await.unwrap().cancel);
    assert_eq!(
        e.cancelled(&a.lease).await.unwrap(),
        Finished::Ended(JobState::Cancelled)
    );
    let data = h.wait_event(&id, "job.cancelled", T).await;
    assert_eq!(data["reason"], "cancelled by alice");
    assert_eq!(
        h.job(&id).await.error.as_deref(),
        Some("cancelled by alice")
    );

    // Timeout: past timeout_ms the holder is told to stop; with no attempt left it fails.
    let id = h
        .submit(
            KIND,
            json!({}),
            json!({"timeout_ms": 300, "max_attempts": 1}),
        )
        .await;
    let a = lease_one(&e).await;
    eventually!(T, e.heartbeat(&a.lease).await.unwrap().cancel);
    assert_eq!(
        e.cancelled(&a.lease).await.unwrap(),
        Finished::Ended(JobState::Failed)
    );
    let job = h.job(&id).await;
    assert!(job.error.unwrap().contains("timed out after 300 ms"));

    // Lapse: a lease not renewed is taken back; the old holder can no
    // longer publish or finish, and the job runs again (attempt 2).
    let id = h.submit(KIND, json!({}), json!({})).await;
    let a = lease_one(&e).await;
    let mut reclaimed = 0;
    eventually!(T, {
        reclaimed += e.reclaim(KIND, 10).await.unwrap();
        reclaimed == 1
    });
    assert!(matches!(
        e.publish(&a.lease, vec![chunk("late")]).await,
        Err(AttemptError::LeaseLost)
    ));
    assert!(matches!(
        e.complete(&a.lease, json!({})).await,
        Err(AttemptError::LeaseLost)
    ));
    let a2 = lease_one(&e).await;
    assert_eq!((a2.lease.id.as_str(), a2.lease.attempt), (id.as_str(), 2));
    assert!(!h
        .events(&id)
        .await
        .iter()
        .any(|(t, d)| t == "job.chunk" && d["text"] == "late"));
    assert_eq!(
        e.complete(&a2.lease, json!({})).await.unwrap(),
        Finished::Ended(JobState::Completed)
    );
}
