//! Redis going away and coming back empty: readiness follows it, requests
//! fail fast with UNAVAILABLE while it is away, live delivery resumes on
//! existing connections, and the lost history shows as a new epoch.

use std::time::{Duration, Instant};

use relay_testkit::{eventually, publish, try_publish, TestPostgres, TestRedis, WsClient};
use serde_json::{json, Value};

use crate::support::{error_code, gateway, id_of, only_events, T};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_readiness_fail_fast_resumed_delivery_and_new_epoch() {
    let pg = TestPostgres::start();
    let mut redis = TestRedis::start();
    let gw = gateway(&redis).postgres(&pg).spawn().await;
    eventually!(
        Duration::from_secs(20),
        gw.status_of("/readyz").await == Some(200)
    );

    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (s, _) = c.subscribe_ok(1, "news", None, None).await;
    let old_epoch = s["epoch"].as_str().expect("epoch").to_string();
    let e1 = publish(&gw, "news", "test.seq", json!({"seq": 1})).await;
    assert_eq!(id_of(&c.recv_events(1, T).await[0]), e1);

    redis.kill();
    eventually!(
        Duration::from_secs(10),
        gw.status_of("/readyz").await == Some(503)
    );

    // Requests fail with 503 UNAVAILABLE (a request already in flight when
    // Redis died may wait for the gateway's command timeout, so wait for the
    // first such answer), and from then on they fail fast.
    let mut last: String;
    eventually!(
        Duration::from_secs(10),
        {
            let r = try_publish(&gw, "news", "test.seq", json!({"seq": 2})).await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            last = format!("{status} {body}");
            status == 503 && body["error"]["code"] == "UNAVAILABLE"
        },
        "last answer: {last}"
    );
    for _ in 0..3 {
        let started = Instant::now();
        let r = try_publish(&gw, "news", "test.seq", json!({"seq": 2})).await;
        let took = started.elapsed();
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("JSON error body");
        assert_eq!((status, error_code(&body)), (503, "UNAVAILABLE"), "{body}");
        assert!(
            took < Duration::from_secs(1),
            "publish while Redis is down took {took:?}"
        );
    }

    // A WebSocket publish gets a retryable UNAVAILABLE error frame.
    let started = Instant::now();
    c.send_json(&json!({"op": "publish", "id": 42, "topic": "news", "type": "test.seq", "data": {"seq": 3}})).await;
    let reply = c.next_json(T).await;
    assert_eq!(reply["op"], "error", "{reply}");
    assert_eq!(reply["code"], "UNAVAILABLE", "{reply}");
    assert_eq!(reply["id"], 42, "{reply}");
    assert_eq!(reply["retryable"], true, "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "WS publish while Redis is down took {:?}",
        started.elapsed()
    );

    redis.restart();
    eventually!(
        Duration::from_secs(30),
        gw.status_of("/readyz").await == Some(200)
    );

    // Live delivery resumes on the connection that lived through the outage.
    let e2 = publish(&gw, "news", "test.seq", json!({"seq": 4})).await;
    let frames = c.recv_until(T, |f| f["op"] == "event").await;
    let (event, others) = frames.split_last().unwrap();
    assert_eq!(
        id_of(event),
        e2,
        "the first event after the restart must be the new one: {frames:?}"
    );
    if !others.is_empty() {
        eprintln!("note: frames sent during the outage: {others:?}");
    }

    // Resuming with the old epoch cannot be vouched for, and gets what is kept.
    let (mut c2, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (s2, before) = c2
        .subscribe_ok(1, "news", Some(&e1), Some(&old_epoch))
        .await;
    assert_eq!(s2["recovered"], false, "history was lost with Redis: {s2}");
    let new_epoch = s2["epoch"].as_str().expect("epoch").to_string();
    assert_ne!(new_epoch, old_epoch, "a lost history must get a new epoch");
    let mut events = only_events(before);
    if events.is_empty() {
        events = c2.recv_events(1, T).await;
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(id_of(&events[0]), e2);

    // With the new epoch, the same resume is recovered.
    let (mut c3, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (s3, before) = c3
        .subscribe_ok(1, "news", Some(&e2), Some(&new_epoch))
        .await;
    assert_eq!(s3["recovered"], true, "{s3}");
    assert_eq!(s3["replayed"], 0, "{s3}");
    assert!(before.is_empty());
}
