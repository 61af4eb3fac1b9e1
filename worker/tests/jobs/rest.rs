//! The job API through a real `relay-gateway` process, with a real worker.
//!
//! Ignored until the gateway merges `JobsApi::router` (then run with
//! `cargo test -p relay-worker --test jobs -- --include-ignored rest`).

use std::time::Duration;

use relay_shared::jobs::JobState;
use relay_testkit::TestGateway;
use serde_json::{json, Value};

use crate::support::{terminal_events, Harness};

async fn post(gw: &TestGateway, path: &str, body: Value) -> (u16, Value) {
    let resp = gw
        .http()
        .post(gw.http_url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(gw: &TestGateway, path: &str) -> (u16, Value) {
    let resp = gw.get(path).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_through_the_gateway() {
    let h = Harness::start().await;
    let gw = TestGateway::builder()
        .redis(&h.redis)
        .postgres(&h.pg)
        .spawn()
        .await;
    let _worker = h.worker().spawn().await;

    // A streamed job: chunks concatenate to the text; the record ends completed.
    let text = "Relay streams text, chunk by chunk.";
    let (status, accepted) = post(
        &gw,
        "/v1/jobs",
        json!({"kind": "stream", "payload": {"text": text, "chunk_chars": 5, "interval_ms": 5}}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();
    let job = h.wait_end(&id, Duration::from_secs(20)).await;
    assert_eq!(job.state, JobState::Completed);
    let events = h.events(&id).await;
    let streamed: String = events
        .iter()
        .filter(|(t, _)| t == "job.chunk")
        .map(|(_, d)| d["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(streamed, text);
    assert_eq!(terminal_events(&events), vec!["job.completed"]);
    let (status, record) = get(&gw, &format!("/v1/jobs/{id}")).await;
    assert_eq!(
        (status, record["result"]["chars"].as_u64()),
        (200, Some(text.chars().count() as u64))
    );

    // Cancel a running job: 202, it ends cancelled, a second cancel is 409.
    let (_, accepted) = post(
        &gw,
        "/v1/jobs",
        json!({"kind": "sleep", "payload": {"ms": 60000, "steps": 60}}),
    )
    .await;
    let id = accepted["id"].as_str().unwrap().to_string();
    h.wait_event(&id, "job.started", Duration::from_secs(10))
        .await;
    assert_eq!(
        post(&gw, &format!("/v1/jobs/{id}/cancel"), json!({}))
            .await
            .0,
        202
    );
    assert_eq!(
        h.wait_end(&id, Duration::from_secs(10)).await.state,
        JobState::Cancelled
    );
    assert_eq!(
        post(&gw, &format!("/v1/jobs/{id}/cancel"), json!({}))
            .await
            .0,
        409
    );

    // Status lists the queues.
    let (_, status) = get(&gw, "/v1/status").await;
    assert!(
        status["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["kind"] == "sleep"),
        "{status}"
    );
}

/// The server API reads dead letters with their payloads (a backend
/// re-driving or repairing a failed job needs them), as SECURITY.md says;
/// an end user's token cannot read the list at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_api_reads_dead_letters_with_their_payloads_and_users_cannot() {
    let h = Harness::start().await;
    let gw = TestGateway::builder()
        .redis(&h.redis)
        .postgres(&h.pg)
        .env("RELAY_AUTH", "jwt")
        .env("RELAY_JWT_SECRET", relay_testkit::jwt::SECRET)
        .spawn()
        .await;
    let _worker = h.worker().spawn().await;
    let payload = json!({"ms": 0, "steps": 1, "fail_attempts": 1});
    let id = h
        .submit("sleep", payload.clone(), json!({"max_attempts": 1}))
        .await;
    assert_eq!(
        h.wait_end(&id, Duration::from_secs(20)).await.state,
        JobState::Failed
    );

    let resp = gw
        .http()
        .get(gw.http_url("/v1/dead-letters"))
        .header("X-Api-Key", relay_testkit::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let list: Value = resp.json().await.unwrap();
    let dead = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(dead["payload"], payload);
    assert_eq!(dead["owner"], crate::support::OWNER);

    let user = relay_testkit::jwt::hs256(&relay_testkit::jwt::claims(crate::support::OWNER));
    let resp = gw
        .http()
        .get(gw.http_url("/v1/dead-letters"))
        .bearer_auth(user)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(resp.status().as_u16(), 401 | 403),
        "{}",
        resp.status()
    );
}
