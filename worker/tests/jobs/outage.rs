//! PostgreSQL stopped: submits fail fast as unavailable, a running job
//! finishes once PostgreSQL is back, and nothing is lost.

use std::time::{Duration, Instant};

use relay_shared::jobs::model::SubmitRequest;
use relay_shared::jobs::JobState;
use serde_json::json;

use crate::support::{terminal_events, Harness, OWNER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_fast_and_loses_nothing() {
    let mut h = Harness::start().await;
    let _worker = h.worker().spawn().await;
    let id = h
        .submit("sleep", json!({"ms": 2500, "steps": 5}), json!({}))
        .await;
    h.wait_event(&id, "job.started", Duration::from_secs(10))
        .await;

    h.pg.stop();
    let req: SubmitRequest =
        serde_json::from_value(json!({"kind": "sleep", "payload": {}})).unwrap();
    let t0 = Instant::now();
    let err = h
        .jobs
        .submit(req.validate(OWNER).unwrap())
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "failed fast: {:?}",
        t0.elapsed()
    );
    // Progress keeps flowing through Redis while PostgreSQL is away.
    let before = h.events(&id).await.len();
    relay_testkit::eventually!(Duration::from_secs(5), h.events(&id).await.len() > before);

    // The handler finishes during the outage; its terminal write waits for PostgreSQL.
    relay_testkit::eventually!(
        Duration::from_secs(10),
        h.events(&id)
            .await
            .iter()
            .any(|(t, d)| t == "job.progress" && d["percent"] == 100)
    );
    h.pg.start_again();
    let job = h.wait_end(&id, Duration::from_secs(40)).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(terminal_events(&h.events(&id).await), vec!["job.completed"]);

    // And new jobs run again.
    let next = h
        .submit("sleep", json!({"ms": 0, "steps": 1}), json!({}))
        .await;
    assert_eq!(
        h.wait_end(&next, Duration::from_secs(10)).await.state,
        JobState::Completed
    );
}
