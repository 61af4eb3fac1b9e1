//! The job system on a real three-master Redis Cluster (`redis-cluster://`):
//! every job kind's queue keys share one hash tag, and the workers hear
//! new jobs and cancels on sharded pub/sub (`SSUBSCRIBE`).
//!
//! The scenarios of the other files run here unchanged on a cluster, plus a
//! cancel through a real gateway, watched as a client watches it.

use std::time::Duration;

use relay_testkit::{TestGateway, TestRedisCluster, WsClient};
use serde_json::{json, Value};

use crate::support::{terminal_events, Harness};

/// Time allowed for a frame or answer that follows at once from a request.
const T: Duration = Duration::from_secs(15);

async fn post(gw: &TestGateway, path: &str, body: Value) -> (u16, Value) {
    let resp = gw
        .http()
        .post(gw.http_url(path))
        .json(&body)
        .timeout(T)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Reads `job:{id}` frames until an event of type `kind`; returns it.
async fn wait_for(c: &mut WsClient, kind: &str, within: Duration) -> Value {
    let frames = c
        .recv_until(within, |f| f["op"] == "event" && f["type"] == kind)
        .await;
    frames.last().cloned().unwrap()
}

/// A running job cancelled through the gateway stops at once: the worker
/// hears the cancel on its kind's sharded channel. The lease is long, so
/// lease renewal (which also reports cancels) cannot be what stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_stops_it_on_a_cluster() {
    let h = Harness::start_on(TestRedisCluster::start()).await;
    let gw = TestGateway::builder()
        .redis_url(&h.redis.url())
        .postgres(&h.pg)
        .spawn()
        .await;
    // Every built-in kind (their channels hash to different slots), and
    // renewals only every 40 s.
    let worker = h.worker().env("RELAY_JOB_LEASE", "120s").spawn().await;

    let (status, accepted) = post(
        &gw,
        "/v1/jobs",
        json!({"kind": "sleep", "payload": {"ms": 600000, "steps": 600}}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();
    let topic = format!("job:{id}");
    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    c.subscribe_ok(1, &topic, Some("0-0"), None).await;
    wait_for(&mut c, "job.started", T).await;

    let (status, body) = post(&gw, &format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, 202, "{body}");
    let cancelled = wait_for(&mut c, "job.cancelled", T).await;
    assert_eq!(cancelled["topic"], topic.as_str(), "{cancelled}");
    let record: Value = gw
        .get(&format!("/v1/jobs/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(record["state"], "cancelled", "{record}\n{}", worker.log());
    assert_eq!(
        terminal_events(&h.events(&id).await),
        vec!["job.cancelled"],
        "one terminal event"
    );
    // The ack goes out alongside the terminal event, not before it.
    relay_testkit::eventually!(T, h.jobs.queue.depth("sleep").await.unwrap().running == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_dead_letters_timeouts_delays_and_idempotency_on_a_cluster() {
    crate::lifecycle::lifecycle_and_idempotency(Harness::start_on(TestRedisCluster::start()).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_and_queued_jobs_are_cancelled_once_on_a_cluster() {
    crate::cancel::cancel_running_and_queued(Harness::start_on(TestRedisCluster::start()).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_job_completes_on_another_worker_on_a_cluster() {
    crate::crash::killed_worker_job_retried(Harness::start_on(TestRedisCluster::start()).await)
        .await;
}
