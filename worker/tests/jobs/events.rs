//! Every job event names its job: `data.job_id` on every `job.*` event of
//! `job:{id}`, and `job_id` plus `kind` on the state events, on each of
//! `job:{id}`, `user:{owner}` and `jobs`, so a client watching one of the
//! shared topics can tell which job an event is about.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{Harness, OWNER};

const STATE: [&str; 5] = [
    "job.queued",
    "job.started",
    "job.completed",
    "job.failed",
    "job.cancelled",
];

/// Asserts that every event in `events` about one of `ids` names it, and
/// that state events carry `kind`; returns the events about `ids`.
fn about<'a>(
    events: &'a [(String, Value)],
    ids: &[(&str, &str)],
    topic: &str,
) -> Vec<&'a (String, Value)> {
    let mut out = Vec::new();
    for e @ (ty, data) in events {
        assert!(ty.starts_with("job."), "{topic}: {ty}");
        let id = data["job_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{topic}: {ty} has no job_id: {data}"));
        let Some((_, kind)) = ids.iter().find(|(i, _)| *i == id) else {
            continue;
        };
        if STATE.contains(&ty.as_str()) {
            assert_eq!(data["kind"], *kind, "{topic}: {ty} names its kind: {data}");
        }
        out.push(e);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_event_names_its_job_on_every_topic() {
    let h = Harness::start().await;
    let _worker = h.worker().spawn().await;

    // Progress, a retry and a completion; chunks; a failure; a cancel.
    let slept = h
        .submit(
            "sleep",
            json!({"ms": 100, "steps": 2, "fail_attempts": 1}),
            json!({"max_attempts": 2}),
        )
        .await;
    let streamed = h
        .submit(
            "stream",
            json!({"text": "hello there", "chunk_chars": 4, "interval_ms": 1}),
            json!({}),
        )
        .await;
    let failed = h
        .submit(
            "sleep",
            json!({"ms": 0, "steps": 1, "fail_attempts": 1}),
            json!({"max_attempts": 1}),
        )
        .await;
    let cancelled = h
        .submit(
            "sleep",
            json!({"ms": 0, "steps": 1}),
            json!({"delay_ms": 600000}),
        )
        .await;
    h.jobs.cancel(&cancelled, "not needed").await.unwrap();
    for id in [&slept, &streamed, &failed] {
        h.wait_end(id, Duration::from_secs(20)).await;
    }
    let ids = [
        (slept.as_str(), "sleep"),
        (streamed.as_str(), "stream"),
        (failed.as_str(), "sleep"),
        (cancelled.as_str(), "sleep"),
    ];

    // job:{id}: every event, each naming its own job.
    let mut seen_types = Vec::new();
    for (id, _) in ids {
        let events = h.events(id).await;
        let named = about(&events, &ids, &format!("job:{id}"));
        assert_eq!(named.len(), events.len());
        for (ty, data) in &events {
            assert_eq!(data["job_id"], id, "{ty}: {data}");
            seen_types.push(ty.clone());
        }
    }
    for ty in [
        "job.queued",
        "job.started",
        "job.progress",
        "job.chunk",
        "job.retrying",
        "job.completed",
        "job.failed",
        "job.cancelled",
    ] {
        assert!(
            seen_types.iter().any(|t| t == ty),
            "no {ty} seen: {seen_types:?}"
        );
    }

    // user:{owner} and jobs: only state events, each with job_id and kind,
    // and the terminal one of each job tells which job ended how.
    for topic in [format!("user:{OWNER}"), "jobs".to_string()] {
        let events = h.topic_events(&topic).await;
        let named = about(&events, &ids, &topic);
        for (ty, _) in &named {
            assert!(
                STATE.contains(&ty.as_str()),
                "{topic} carries only state events: {ty}"
            );
        }
        let end_of = |id: &str| -> Vec<String> {
            named
                .iter()
                .filter(|(ty, d)| d["job_id"] == id && STATE[2..].contains(&ty.as_str()))
                .map(|(ty, _)| ty.clone())
                .collect()
        };
        assert_eq!(end_of(&slept), vec!["job.completed"], "{topic}");
        assert_eq!(end_of(&streamed), vec!["job.completed"], "{topic}");
        assert_eq!(end_of(&failed), vec!["job.failed"], "{topic}");
        assert_eq!(end_of(&cancelled), vec!["job.cancelled"], "{topic}");
    }
}
