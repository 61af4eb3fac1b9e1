//! A worker killed with SIGKILL mid-job: its lease lapses, another worker
//! takes the job back and completes it (attempt 2), with one terminal event.

use std::time::Duration;

use crate::support::{terminal_events, Harness};
use relay_shared::jobs::JobState;
use relay_testkit::RedisTarget;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_job_completes_on_another_worker() {
    killed_worker_job_retried(Harness::start().await).await;
}

/// The scenario itself, on one Redis or a cluster (see `cluster`).
pub(crate) async fn killed_worker_job_retried<R: RedisTarget>(h: Harness<R>) {
    let mut first = h
        .worker()
        .env("RELAY_INSTANCE_ID", "worker-doomed")
        .spawn()
        .await;
    let id = h
        .submit("sleep", json!({"ms": 3000, "steps": 3}), json!({}))
        .await;
    let started = h
        .wait_event(&id, "job.started", Duration::from_secs(10))
        .await;
    assert_eq!(
        started,
        json!({"attempt": 1, "worker": "worker-doomed", "job_id": id, "kind": "sleep"})
    );
    h.wait_event(&id, "job.progress", Duration::from_secs(5))
        .await;

    first.kill();
    let second = h
        .worker()
        .env("RELAY_INSTANCE_ID", "worker-heir")
        .spawn()
        .await;
    let job = h.wait_end(&id, Duration::from_secs(20)).await;

    assert_eq!(job.state, JobState::Completed, "{job:?}\n{}", second.log());
    assert_eq!(job.attempts, 2);
    let events = h.events(&id).await;
    assert_eq!(terminal_events(&events), vec!["job.completed"]);
    let starts: Vec<_> = events
        .iter()
        .filter(|(t, _)| t == "job.started")
        .map(|(_, d)| d.clone())
        .collect();
    assert_eq!(
        starts,
        vec![
            json!({"attempt": 1, "worker": "worker-doomed", "job_id": id, "kind": "sleep"}),
            json!({"attempt": 2, "worker": "worker-heir", "job_id": id, "kind": "sleep"})
        ]
    );
    let retrying = events
        .iter()
        .find(|(t, _)| t == "job.retrying")
        .expect("job.retrying after the reclaim");
    assert_eq!(retrying.1["attempt"], 1);
    assert!(
        retrying.1["error"]
            .as_str()
            .unwrap()
            .contains("worker-doomed"),
        "{retrying:?}"
    );
    // The state events reached the owner's topic and `jobs` too, one terminal each.
    let user = h.topic_events("user:alice").await;
    assert_eq!(terminal_events(&user), vec!["job.completed"]);
    assert_eq!(
        terminal_events(&h.topic_events("jobs").await),
        vec!["job.completed"]
    );
    // The job left Redis.
    assert!(!h.jobs.queue.holds("sleep", &id).await.unwrap());
}
