//! Priorities, and a graceful shutdown giving a running job back.

use std::time::Duration;

use relay_shared::jobs::JobState;
use serde_json::json;

use crate::support::{terminal_events, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priorities_run_first_then_first_in_first_out() {
    let h = Harness::start().await;
    let mut ids = Vec::new();
    for priority in [0, 10, -5, 100, 5, 10] {
        ids.push((
            priority,
            h.submit(
                "sleep",
                json!({"ms": 0, "steps": 1}),
                json!({"priority": priority}),
            )
            .await,
        ));
    }
    let _worker = h
        .worker()
        .env("RELAY_WORKER_CONCURRENCY", "1")
        .spawn()
        .await;
    let mut started = Vec::new();
    for (priority, id) in &ids {
        let job = h.wait_end(id, Duration::from_secs(20)).await;
        assert_eq!(job.state, JobState::Completed);
        started.push((job.started_at.unwrap(), *priority, id.clone()));
    }
    started.sort();
    let order: Vec<i32> = started.iter().map(|(_, p, _)| *p).collect();
    assert_eq!(order, vec![100, 10, 10, 5, 0, -5]);
    let tens: Vec<&String> = started
        .iter()
        .filter(|(_, p, _)| *p == 10)
        .map(|(_, _, id)| id)
        .collect();
    assert_eq!(
        tens,
        vec![&ids[1].1, &ids[5].1],
        "same priority: first in, first out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_a_running_job_back_without_counting_the_attempt() {
    let h = Harness::start().await;
    let mut first = h
        .worker()
        .env("RELAY_SHUTDOWN_GRACE", "1s")
        .env("RELAY_INSTANCE_ID", "worker-leaving")
        .spawn()
        .await;
    // Long enough that it cannot end during the 1 s drain even when a loaded
    // machine delays the test's view of `job.started` by seconds.
    let id = h
        .submit("sleep", json!({"ms": 12000, "steps": 12}), json!({}))
        .await;
    h.wait_event(&id, "job.started", Duration::from_secs(10))
        .await;
    first.terminate();
    let status = first
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("worker exits within its grace");
    assert!(status.success(), "{status:?}\n{}", first.log());
    let job = h.job(&id).await;
    assert_eq!((job.state, job.attempts), (JobState::Queued, 0), "{job:?}");

    let _second = h
        .worker()
        .env("RELAY_INSTANCE_ID", "worker-staying")
        .spawn()
        .await;
    let job = h.wait_end(&id, Duration::from_secs(60)).await;
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Completed, 1),
        "{job:?}"
    );
    assert_eq!(terminal_events(&h.events(&id).await), vec!["job.completed"]);
}
