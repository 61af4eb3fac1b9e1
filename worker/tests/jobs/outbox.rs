//! The terminal event is never lost and never doubled: a worker killed, or
//! Redis stopped, between the terminal write and its event, and a writer
//! racing the sweeps. The worker binary of test builds has failpoints: with
//! `FAILPOINTS=after_terminal_write=wait:PATH` it holds every attempt right
//! after its end is committed, until `PATH` exists.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use relay_shared::jobs::events::{Ending, JobRef};
use relay_shared::jobs::{outbox, JobState};
use relay_testkit::eventually;
use serde_json::json;

use crate::support::{terminal_events, Harness, OWNER};

const T: Duration = Duration::from_secs(30);

/// A path that does not exist yet, for releasing a failpoint.
fn release_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "relay-failpoint-{}",
        relay_shared::jobs::new_token()
    ))
}

/// Asserts the job's terminal event is on each of its topics exactly once.
async fn once_everywhere(h: &Harness, id: &str, ty: &str) {
    let on_job = terminal_events(&h.events(id).await);
    assert_eq!(on_job, vec![ty.to_string()], "job:{id}");
    for topic in [format!("user:{OWNER}"), "jobs".to_string()] {
        let about_job: Vec<_> = h
            .topic_events(&topic)
            .await
            .into_iter()
            .filter(|(_, d)| d["job_id"] == id)
            .collect();
        assert_eq!(terminal_events(&about_job), vec![ty.to_string()], "{topic}");
    }
}

async fn outbox_len(h: &Harness) -> i64 {
    h.jobs.store.outbox_len().await.unwrap()
}

fn redis_pid(h: &Harness) -> String {
    h.redis
        .cli(&["INFO", "server"])
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .expect("redis process_id")
        .trim()
        .to_string()
}

fn signal(pid: &str, sig: &str) {
    let ok = Command::new("kill").args([sig, pid]).status().unwrap();
    assert!(ok.success(), "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_recording_the_end_loses_no_terminal_event() {
    let h = Harness::start().await;
    let release = release_path();
    let mut doomed = h
        .worker()
        .env("RELAY_INSTANCE_ID", "worker-doomed")
        .env(
            "FAILPOINTS",
            &format!("after_terminal_write=wait:{}", release.display()),
        )
        .spawn()
        .await;
    let id = h
        .submit("sleep", json!({"ms": 0, "steps": 1}), json!({}))
        .await;

    // The end is in PostgreSQL, its event not yet anywhere: the window.
    let job = h.wait_recorded(&id, T).await;
    assert_eq!(job.state, JobState::Completed);
    eventually!(T, doomed.log().contains("failpoint reached"));
    assert_eq!(terminal_events(&h.events(&id).await), Vec::<String>::new());
    assert_eq!(outbox_len(&h).await, 1);

    doomed.kill();
    // Any process's sweep publishes it once the writer's claim lapsed.
    let heir = h
        .worker()
        .env("RELAY_INSTANCE_ID", "worker-heir")
        .spawn()
        .await;
    eventually!(T, outbox_len(&h).await == 0, "{}", heir.log());
    once_everywhere(&h, &id, "job.completed").await;
    let done = h.wait_event(&id, "job.completed", T).await;
    assert_eq!(done["job_id"], id.as_str());
    assert_eq!(done["kind"], "sleep");
    assert!(done["result"]["slept_ms"].is_u64(), "{done}");
    // The killed attempt's lease lapses and the job leaves Redis.
    eventually!(T, !h.jobs.queue.holds("sleep", &id).await.unwrap());
    // Nothing publishes it again later.
    h.jobs.sweep_outbox().await.unwrap();
    once_everywhere(&h, &id, "job.completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_after_the_end_was_recorded_loses_no_terminal_event() {
    let h = Harness::start().await;
    let release = release_path();
    let worker = h
        .worker()
        .env(
            "FAILPOINTS",
            &format!("after_terminal_write=wait:{}", release.display()),
        )
        .spawn()
        .await;
    let id = h
        .submit(
            "sleep",
            json!({"ms": 0, "steps": 1, "fail_attempts": 1}),
            json!({"max_attempts": 1}),
        )
        .await;
    assert_eq!(h.wait_recorded(&id, T).await.state, JobState::Failed);
    eventually!(T, worker.log().contains("failpoint reached"));
    assert_eq!(outbox_len(&h).await, 1);

    // Redis freezes just as the writer goes to publish; the writer's
    // publishes time out (some may still be executed once Redis resumes).
    let pid = redis_pid(&h);
    signal(&pid, "-STOP");
    std::fs::write(&release, b"go").unwrap();
    let gave_up = relay_testkit::wait_until(T, || async {
        worker.log().contains("a sweep will publish it")
    })
    .await;
    signal(&pid, "-CONT");
    assert!(gave_up, "the writer gave up on Redis: {}", worker.log());

    eventually!(T, outbox_len(&h).await == 0, "{}", worker.log());
    once_everywhere(&h, &id, "job.failed").await;
    let failed = h.wait_event(&id, "job.failed", T).await;
    assert_eq!(failed["attempts"], 1);
    assert_eq!(failed["kind"], "sleep");
    let _ = std::fs::remove_file(&release);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_racing_sweeps_publishes_each_end_once() {
    let h = Harness::start().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let id = h
            .submit(
                "sleep",
                json!({"ms": 0, "steps": 1}),
                json!({"delay_ms": 600000}),
            )
            .await;
        // Recorded as a writer does, its event not yet published...
        let done = h.jobs.store.cancel_queued(&id, "raced").await.unwrap();
        assert!(done.is_some());
        ids.push(id);
    }
    assert_eq!(outbox_len(&h).await, 20);
    // ...and already claimable by sweeps, as if the writer were slow.
    h.pg.psql("UPDATE job_outbox SET claimed_until = now() - interval '1 second'");
    let (store, events) = (&h.jobs.store, &h.jobs.events);
    let writers = futures_util::future::join_all(ids.iter().map(|id| async move {
        let job = JobRef::new(id, "sleep", OWNER);
        outbox::announce(store, events, job, &Ending::Cancelled { reason: "raced" }).await
    }));
    let sweeps = futures_util::future::join_all((0..4).map(|_| h.jobs.sweep_outbox()));
    let (written, swept) = tokio::join!(writers, sweeps);
    assert!(written.iter().all(|ok| *ok));
    for s in swept {
        s.unwrap();
    }
    eventually!(T, outbox_len(&h).await == 0);
    for id in &ids {
        once_everywhere(&h, id, "job.cancelled").await;
        let data = h.wait_event(id, "job.cancelled", T).await;
        assert_eq!(data["reason"], "raced");
    }
}
