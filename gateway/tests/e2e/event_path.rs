//! The WebSocket event path: welcome, subscribe, fan-out across gateways,
//! replay with `since`, trimmed history, fail-over to another gateway.

use std::sync::Arc;
use std::time::Duration;

use relay_testkit::{eventually, publish, RedisTarget, TestRedis, WsClient};
use serde_json::{json, Value};

use crate::support::{
    assert_seqs, gateway, id_key, id_of, now_ms, only_events, publish_seqs, seq_of, QUIET, T,
};

/// Subscribes and reads `n` events, whether the server sends the replay
/// before or after the `subscribed` reply; returns the reply and the events.
async fn subscribe_collect(
    c: &mut WsClient,
    id: u64,
    topic: &str,
    since: Option<&str>,
    epoch: Option<&str>,
    n: usize,
) -> (Value, Vec<Value>) {
    let (reply, before) = c.subscribe_ok(id, topic, since, epoch).await;
    let mut events = only_events(before);
    if events.len() < n {
        events.extend(c.recv_events(n - events.len(), T).await);
    }
    (reply, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_names_the_session_and_the_heartbeat() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).env("RELAY_HEARTBEAT", "7s").spawn().await;
    let (_a, wa) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (_b, wb) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    for w in [&wa, &wb] {
        assert!(
            w["session"].as_str().is_some_and(|s| !s.is_empty()),
            "welcome without a session: {w}"
        );
        assert_eq!(
            w["heartbeat_ms"], 7000,
            "heartbeat_ms should follow RELAY_HEARTBEAT=7s: {w}"
        );
    }
    assert_ne!(
        wa["session"], wb["session"],
        "two connections share a session name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fan_out_to_clients_on_every_gateway() {
    fan_out_across_gateways(&TestRedis::start()).await;
}

/// The scenario itself, on one Redis or a cluster (see `cluster`).
pub(crate) async fn fan_out_across_gateways(redis: &impl RedisTarget) {
    let a = gateway(redis).spawn().await;
    let b = gateway(redis).spawn().await;
    let topic = "chat:room1";
    let (mut on_a, _) = WsClient::connect_welcomed(&a.ws_url("/v1/ws")).await;
    let (mut on_b, _) = WsClient::connect_welcomed(&b.ws_url("/v1/ws")).await;
    let (mut idle, _) = WsClient::connect_welcomed(&a.ws_url("/v1/ws")).await;
    on_a.subscribe_ok(1, topic, None, None).await;
    on_b.subscribe_ok(1, topic, None, None).await;
    idle.subscribe_ok(1, "chat:other", None, None).await;

    let before = now_ms();
    let id1 = publish(&a, topic, "message", json!({"text": "from a"})).await;
    let id2 = publish(&b, topic, "message", json!({"text": "from b", "n": [1, 2]})).await;
    assert!(
        id_key(&id1) < id_key(&id2),
        "ids of one topic must increase: {id1} then {id2}"
    );

    for (name, c) in [("client on A", &mut on_a), ("client on B", &mut on_b)] {
        let events = c.recv_events(2, T).await;
        assert_eq!(id_of(&events[0]), id1, "{name}: {events:?}");
        assert_eq!(id_of(&events[1]), id2, "{name}: {events:?}");
        assert_eq!(events[0]["data"], json!({"text": "from a"}));
        assert_eq!(events[1]["data"], json!({"text": "from b", "n": [1, 2]}));
        for e in &events {
            assert_eq!(e["topic"], topic);
            assert_eq!(e["type"], "message");
            let ts = e["ts"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: event without a numeric ts: {e}"));
            assert!(
                ts + 1000 >= before && ts <= now_ms() + 1000,
                "{name}: ts {ts} is not the acceptance time: {e}"
            );
        }
    }

    // A publish over the WebSocket is acknowledged and fans out the same way.
    on_b.send_json(&json!({"op": "publish", "id": 3, "topic": topic, "type": "message", "data": {"text": "ws"}}))
        .await;
    let mut ack = None;
    let mut own = None;
    for _ in 0..2 {
        let f = on_b.next_json(T).await;
        match f["op"].as_str() {
            Some("ack") => ack = Some(f),
            Some("event") => own = Some(f),
            _ => panic!("expected an ack and the event, got {f}"),
        }
    }
    let ack = ack.expect("ack");
    assert_eq!(ack["id"], 3, "ack must echo the request id: {ack}");
    let event_id = ack["event_id"].as_str().expect("ack.event_id").to_string();
    assert_eq!(id_of(own.as_ref().unwrap()), event_id);
    let on_a_event = on_a.recv_events(1, T).await;
    assert_eq!(id_of(&on_a_event[0]), event_id);
    assert_eq!(on_a_event[0]["data"], json!({"text": "ws"}));

    // Nothing more: no duplicate, nothing to a client of another topic.
    on_a.assert_silent(QUIET).await;
    on_b.assert_silent(QUIET).await;
    idle.assert_silent(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_without_since_reports_the_position_then_live_events_in_order() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).spawn().await;
    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;

    let (s, before) = c.subscribe_ok(1, "empty", None, None).await;
    assert!(
        before.is_empty(),
        "nothing may precede subscribed without since: {before:?}"
    );
    assert_eq!(s["id"], 1);
    assert_eq!(s["topic"], "empty");
    assert_eq!(
        s["position"], "0-0",
        "an empty topic's position is 0-0: {s}"
    );
    assert!(
        s["epoch"].as_str().is_some_and(|e| !e.is_empty()),
        "subscribed without an epoch: {s}"
    );
    assert_eq!(s["recovered"], true, "{s}");
    assert_eq!(s["replayed"], 0, "{s}");

    let old = publish_seqs(&gw, "busy", 0..3).await;
    let (s2, before) = c.subscribe_ok(2, "busy", None, None).await;
    assert!(
        before.is_empty(),
        "old events must not be replayed without since: {before:?}"
    );
    assert_eq!(
        s2["position"],
        old[2].as_str(),
        "position must be the topic's latest id: {s2}"
    );
    assert_eq!(s2["replayed"], 0, "{s2}");

    // Another client sees the same epoch for the same topic.
    let (mut other, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (s3, _) = other.subscribe_ok(7, "busy", None, None).await;
    assert_eq!(s3["epoch"], s2["epoch"], "one topic, one epoch");

    let new = publish_seqs(&gw, "busy", 3..23).await;
    let events = c.recv_events(20, T).await;
    assert_seqs(&events, "busy", 3..23);
    assert_eq!(
        events
            .iter()
            .map(|e| id_of(e).to_string())
            .collect::<Vec<_>>(),
        new
    );

    let first = publish(&gw, "empty", "test.seq", json!({"seq": 0})).await;
    let events = c.recv_events(1, T).await;
    assert_eq!(id_of(&events[0]), first);
    assert!(id_key(&first) > (0, 0));
    c.assert_silent(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_with_since_id_sends_exactly_the_later_events_then_live() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).spawn().await;
    let ids = publish_seqs(&gw, "feed", 0..10).await;

    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (s, events) = subscribe_collect(&mut c, 1, "feed", Some(&ids[3]), None, 6).await;
    assert_eq!(s["recovered"], true, "{s}");
    assert_eq!(s["replayed"], 6, "{s}");
    assert!(s["epoch"].as_str().is_some_and(|e| !e.is_empty()), "{s}");
    assert_seqs(&events, "feed", 4..10);
    assert_eq!(id_of(&events[0]), ids[4]);

    let live = publish_seqs(&gw, "feed", 10..14).await;
    let events = c.recv_events(4, T).await;
    assert_seqs(&events, "feed", 10..14);
    assert_eq!(id_of(&events[3]), live[3]);
    c.assert_silent(QUIET).await;

    // Resuming at the last id with the epoch: nothing to replay, recovered.
    let epoch = s["epoch"].as_str().unwrap();
    let (mut c2, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (s2, before) = c2
        .subscribe_ok(1, "feed", Some(&live[3]), Some(epoch))
        .await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(s2["recovered"], true, "{s2}");
    assert_eq!(s2["replayed"], 0, "{s2}");
    assert_eq!(s2["epoch"], epoch);
    c2.assert_silent(QUIET).await;

    // From the very beginning: the whole retained history.
    let (mut c3, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (s3, events) = subscribe_collect(&mut c3, 1, "feed", Some("0-0"), Some(epoch), 14).await;
    assert_eq!(s3["recovered"], true, "{s3}");
    assert_eq!(s3["replayed"], 14, "{s3}");
    assert_seqs(&events, "feed", 0..14);
    c3.assert_silent(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_with_since_timestamp_sends_events_with_a_later_ts() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).spawn().await;
    let (mut watcher, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    watcher.subscribe_ok(1, "clock", None, None).await;

    publish_seqs(&gw, "clock", 0..5).await;
    let first = watcher.recv_events(5, T).await;
    let t = first
        .iter()
        .map(|e| e["ts"].as_u64().expect("ts"))
        .max()
        .unwrap();
    // Let the clock move past the first half, so the second half's ts are later.
    eventually!(Duration::from_secs(2), now_ms() > t + 2);
    publish_seqs(&gw, "clock", 5..10).await;
    let second = watcher.recv_events(5, T).await;
    assert!(
        second.iter().all(|e| e["ts"].as_u64().unwrap() > t),
        "clock went backwards? {second:?}"
    );

    // `since` as a string of digits.
    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (s, events) = subscribe_collect(&mut c, 1, "clock", Some(&t.to_string()), None, 5).await;
    assert_eq!(s["recovered"], true, "{s}");
    assert_eq!(s["replayed"], 5, "{s}");
    assert_seqs(&events, "clock", 5..10);
    c.assert_silent(QUIET).await;

    // `since` as a JSON number.
    let (mut c2, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    c2.send_json(&json!({"op": "subscribe", "id": 2, "topic": "clock", "since": t}))
        .await;
    let frames = c2
        .recv_until(T, |f| f["op"] == "subscribed" || f["op"] == "error")
        .await;
    let (reply, before) = frames.split_last().unwrap();
    assert_eq!(reply["op"], "subscribed", "{reply}");
    assert_eq!(reply["replayed"], 5, "{reply}");
    let mut events = only_events(before.to_vec());
    events.extend(c2.recv_events(5 - events.len(), T).await);
    assert_seqs(&events, "clock", 5..10);
    c2.assert_silent(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_older_than_the_trimmed_history_is_not_recovered_but_gets_what_is_kept() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).env("RELAY_HISTORY_SIZE", "5").spawn().await;
    let ids = publish_seqs(&gw, "short", 0..20).await;
    let url = gw.ws_url("/v1/ws");

    // (since index, recovered, first seq replayed)
    let cases = [
        (2usize, false, 15u64),
        (13, false, 15),
        (14, true, 15),
        (16, true, 17),
        (19, true, 20),
    ];
    for (since, recovered, from) in cases {
        let (mut c, _) = WsClient::connect_welcomed(&url).await;
        let n = (20 - from) as usize;
        let (s, events) = subscribe_collect(&mut c, 1, "short", Some(&ids[since]), None, n).await;
        assert_eq!(
            s["recovered"], recovered,
            "since = event {since} with 5 events kept: {s}"
        );
        assert_eq!(s["replayed"], n, "since = event {since}: {s}");
        assert_seqs(&events, "short", from..20);
        c.assert_silent(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_delivery() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).spawn().await;
    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    c.subscribe_ok(1, "t", None, None).await;
    publish_seqs(&gw, "t", 0..1).await;
    assert_seqs(&c.recv_events(1, T).await, "t", 0..1);
    c.send_json(&json!({"op": "unsubscribe", "id": 2, "topic": "t"}))
        .await;
    let reply = c.next_op("unsubscribed", T).await;
    assert_eq!(reply["id"], 2);
    assert_eq!(reply["topic"], "t");
    publish_seqs(&gw, "t", 1..3).await;
    c.assert_silent(QUIET).await;
    c.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_longer_than_the_send_queue_is_delivered_whole() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).env("RELAY_SEND_QUEUE", "32").spawn().await;
    publish_seqs(&gw, "long", 0..400).await;
    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (s, events) = subscribe_collect(&mut c, 1, "long", Some("0-0"), None, 400).await;
    assert_eq!(s["recovered"], true, "{s}");
    assert_eq!(s["replayed"], 400, "{s}");
    assert_seqs(&events, "long", 0..400);
    c.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_gateway_after_a_sigkill_without_loss_or_duplicate() {
    resume_after_a_gateway_kill(&TestRedis::start()).await;
}

/// The scenario itself, on one Redis or a cluster (see `cluster`).
pub(crate) async fn resume_after_a_gateway_kill(redis: &impl RedisTarget) {
    const N: u64 = 300;
    let mut a = gateway(redis).spawn().await;
    let b = Arc::new(gateway(redis).spawn().await);
    let topic = "orders";

    let (mut c, _) = WsClient::connect_welcomed(&a.ws_url("/v1/ws")).await;
    let (s, _) = c.subscribe_ok(1, topic, None, None).await;
    let epoch = s["epoch"].as_str().expect("epoch").to_string();

    let publisher = {
        let b = b.clone();
        tokio::spawn(async move {
            for i in 0..N {
                publish(&b, topic, "test.seq", json!({"seq": i})).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let mut seen: Vec<Value> = Vec::new();
    while seen.len() < 100 {
        seen.extend(c.recv_events(1, T).await);
    }
    a.kill();
    // Whatever was already on its way is still read; then the connection ends.
    while let Some(f) = c.next_json_or_end(T).await {
        assert_eq!(f["op"], "event", "{f}");
        seen.push(f);
    }
    let last = id_of(seen.last().unwrap()).to_string();

    let (mut c2, _) = WsClient::connect_welcomed(&b.ws_url("/v1/ws")).await;
    let (s2, before) = c2.subscribe_ok(1, topic, Some(&last), Some(&epoch)).await;
    assert_eq!(
        s2["recovered"], true,
        "resuming within history on another gateway: {s2}"
    );
    assert_eq!(s2["epoch"], epoch.as_str());
    seen.extend(only_events(before));
    while seen.last().map(seq_of) != Some(N - 1) {
        seen.extend(c2.recv_events(1, Duration::from_secs(20)).await);
    }
    tokio::time::timeout(Duration::from_secs(30), publisher)
        .await
        .expect("publisher finished")
        .unwrap();
    assert_seqs(&seen, topic, 0..N);
    c2.assert_silent(QUIET).await;
}

/// Many clients resuming one topic from one position at once (a gateway
/// restart, a network blip): every one gets exactly the events it missed,
/// recovered, then live events; none is refused while Redis is up. Their
/// history reads are shared or queued, never failed for lack of time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_stampede_gets_every_client_exactly_its_missed_events() {
    const CLIENTS: usize = 300;
    let redis = TestRedis::start();
    // One test address opens every connection: lift the per-address caps.
    let gw = gateway(&redis)
        .env("RELAY_MAX_CONNECTIONS_PER_IP", "1000")
        .env("RELAY_MAX_CONNECTIONS_PER_USER", "1000")
        .env("RELAY_HTTP_RATE", "100000")
        .spawn()
        .await;
    let ids = publish_seqs(&gw, "herd", 0..10).await;
    let (mut probe, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (s, _) = probe.subscribe_ok(1, "herd", Some(&ids[9]), None).await;
    let epoch = s["epoch"].as_str().unwrap().to_owned();
    probe.close().await;

    let url = gw.ws_url("/v1/ws");
    let clients =
        futures_util::future::join_all((0..CLIENTS).map(|_| WsClient::connect_welcomed(&url)))
            .await;
    publish_seqs(&gw, "herd", 10..60).await;

    // All at once: the subscribe frames go out before any reply is read.
    let resumed = futures_util::future::join_all(clients.into_iter().map(|(mut c, _)| {
        let (since, epoch) = (ids[9].clone(), epoch.clone());
        async move {
            let (reply, events) =
                subscribe_collect(&mut c, 7, "herd", Some(&since), Some(&epoch), 50).await;
            (c, reply, events)
        }
    }))
    .await;
    let mut clients = Vec::new();
    for (c, reply, events) in resumed {
        assert_eq!(reply["recovered"], true, "{reply}");
        assert_eq!(reply["replayed"], 50, "{reply}");
        assert_eq!(reply["epoch"], epoch.as_str(), "{reply}");
        assert_seqs(&events, "herd", 10..60);
        clients.push(c);
    }

    // Then live, once each.
    publish_seqs(&gw, "herd", 60..63).await;
    for c in &mut clients {
        assert_seqs(&c.recv_events(3, T).await, "herd", 60..63);
    }
    let metrics = gw.get("/metrics").await.text().await.unwrap();
    let reads = crate::support::metric_sum(&metrics, |n| n == "relay_gateway_history_reads_total");
    assert_eq!(
        reads,
        Some((CLIENTS + 1) as f64),
        "every subscribe reads its history once, alone or shared"
    );
}
