//! Fairness between owners: with `RELAY_MAX_RUNNING_PER_OWNER`, an owner
//! who submitted as many long jobs as the workers run at once does not
//! hold every slot; another owner's jobs are taken first.

use std::time::Duration;

use chrono::DateTime;
use relay_shared::jobs::JobState;
use serde_json::json;

use crate::support::Harness;

const T: Duration = Duration::from_secs(30);

/// Alice submits four 2-second jobs, then Bob two, to a worker running four
/// at once; returns when each of them started (ms since the epoch).
async fn start_times(h: &Harness) -> (Vec<i64>, Vec<i64>) {
    let long = json!({"ms": 2000, "steps": 2});
    let mut alice = Vec::new();
    for _ in 0..4 {
        alice.push(
            h.submit_as("alice", "sleep", long.clone(), json!({}))
                .await
                .0
                .id,
        );
    }
    let mut bob = Vec::new();
    for _ in 0..2 {
        bob.push(
            h.submit_as("bob", "sleep", long.clone(), json!({}))
                .await
                .0
                .id,
        );
    }
    let times = |ids: &[String]| {
        let ids = ids.to_vec();
        async move {
            let mut out = Vec::new();
            for id in &ids {
                let job = h.wait_end(id, T).await;
                assert_eq!(job.state, JobState::Completed, "{job:?}");
                let at = DateTime::parse_from_rfc3339(job.started_at.as_ref().unwrap()).unwrap();
                out.push(at.timestamp_millis());
            }
            out.sort();
            out
        }
    };
    let a = times(&alice).await;
    let b = times(&bob).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_at_the_limit_waits_while_another_owner_s_jobs_run() {
    let h = Harness::start().await;
    // Jobs queued before the worker starts, so one pull sees them all.
    let worker = h
        .worker()
        .env("RELAY_WORKER_CONCURRENCY", "4")
        .env("RELAY_MAX_RUNNING_PER_OWNER", "2");
    let jobs = start_times(&h);
    let (_w, (alice, bob)) = tokio::join!(
        async {
            // Give the submits a head start so they are all waiting.
            relay_testkit::eventually!(T, h.jobs.queue.depth("sleep").await.unwrap().waiting == 6);
            worker.spawn().await
        },
        jobs
    );
    // Bob's two jobs ran alongside Alice's first two, before her other two.
    assert!(
        bob[1] < alice[2],
        "bob started at {bob:?}, alice at {alice:?}: bob should not wait for alice's jobs"
    );
    assert!(
        alice[2] - alice[1] >= 1500,
        "alice's third job waited for a slot of hers: {alice:?}"
    );
    // The counts went back to zero as the jobs ended.
    assert_eq!(h.redis.cli(&["HLEN", "relay:{q:sleep}:owners"]).trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_limit_the_first_owner_takes_every_slot() {
    let h = Harness::start().await;
    let worker = h.worker().env("RELAY_WORKER_CONCURRENCY", "4");
    let jobs = start_times(&h);
    let (_w, (alice, bob)) = tokio::join!(
        async {
            relay_testkit::eventually!(T, h.jobs.queue.depth("sleep").await.unwrap().waiting == 6);
            worker.spawn().await
        },
        jobs
    );
    // The default (no limit) is first come, first served.
    assert!(bob[0] > alice[3], "bob {bob:?} waited for alice {alice:?}");
}
