//! `RELAY_LOG_FORMAT=json`: every line both processes write is one JSON
//! object, and lines written inside a connection's span carry `conn_id`, and
//! inside a job's span `job_id`, `kind` and `attempt`, at the top level.

use std::time::Duration;

use relay_testkit::{eventually, TestPostgres, TestRedis, TestWorker, WsClient};
use serde_json::{json, Value};

use crate::support::{gateway, T};

/// Every non-empty line of `log` as a JSON object; panics naming the first
/// line that is not one, or lacks the fixed keys.
fn json_lines(process: &str, log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{process} wrote a line that is not JSON ({e}): {l}"));
            assert!(v.is_object(), "{process}: not an object: {l}");
            for key in ["timestamp", "level", "target"] {
                assert!(v[key].is_string(), "{process}: no {key} in {l}");
            }
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_span_fields_at_the_top_level() {
    let redis = TestRedis::start();
    let pg = TestPostgres::start();
    let gw = gateway(&redis)
        .postgres(&pg)
        .env("RELAY_LOG_FORMAT", "json")
        // WebSocket frame traces are logged inside the connection's span.
        .env(
            "RELAY_LOG",
            "debug,tungstenite=trace,tokio_tungstenite=trace",
        )
        .spawn()
        .await;
    let worker = TestWorker::builder()
        .bin(relay_testkit::bin_path("relay-worker"))
        .redis(&redis)
        .postgres(&pg)
        .env("RELAY_LOG_FORMAT", "json")
        .env("RELAY_LOG", "debug")
        .spawn()
        .await;

    // A WebSocket session.
    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    c.subscribe_ok(1, "logs:test", None, None).await;
    c.ping_pong().await;
    drop(c);

    // A job whose first attempt fails (logged inside the job span), then completes.
    let r = gw
        .http()
        .post(gw.http_url("/v1/jobs"))
        .json(&json!({"kind": "sleep", "payload": {"ms": 10, "steps": 1, "fail_attempts": 1}, "max_attempts": 3}))
        .timeout(T)
        .send()
        .await
        .expect("POST /v1/jobs");
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .expect("job id")
        .to_string();
    eventually!(Duration::from_secs(30), {
        let job: Value = gw
            .get(&format!("/v1/jobs/{id}"))
            .await
            .json()
            .await
            .unwrap_or_default();
        job["state"] == "completed"
    });

    let gateway_lines = json_lines("relay-gateway", &gw.log());
    let in_conn: Vec<&Value> = gateway_lines
        .iter()
        .filter(|l| l["span"] == "conn")
        .collect();
    assert!(
        !in_conn.is_empty(),
        "no gateway line from inside a connection span"
    );
    for l in &in_conn {
        assert!(
            l["conn_id"].is_u64(),
            "a line in a connection span without conn_id: {l}"
        );
    }

    let worker_lines = json_lines("relay-worker", &worker.log());
    let in_job: Vec<&Value> = worker_lines
        .iter()
        .filter(|l| l["job_id"] == id.as_str())
        .collect();
    assert!(!in_job.is_empty(), "no worker line carries job_id {id}");
    for l in &in_job {
        assert_eq!(l["kind"], "sleep", "{l}");
        assert!(
            l["attempt"].is_u64(),
            "a line in a job span without attempt: {l}"
        );
    }
    assert!(
        in_job.iter().any(|l| l["attempt"] == 1
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("retrying"))),
        "the failed first attempt was not logged in its span: {in_job:#?}"
    );
}
