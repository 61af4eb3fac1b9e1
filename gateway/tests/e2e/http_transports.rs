//! Events over plain HTTP: long-polling (`GET /v1/poll`) and Server-Sent
//! Events (`GET /v1/sse`), served by any gateway, resumed without loss.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_testkit::{poll, publish, RedisTarget, SseStream, TestGateway, TestRedis};
use serde_json::{json, Value};

use crate::support::{
    assert_seqs, error_code, gateway, id_key, id_of, publish_seqs, seq_of, QUIET, T,
};

/// The events, cursor and recovered flag of a successful poll.
fn poll_ok(status: u16, body: &Value) -> (Vec<Value>, String, bool) {
    assert_eq!(status, 200, "poll failed: {body}");
    let events = body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("poll answer without events: {body}"))
        .clone();
    let cursor = body["cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("poll answer without cursor: {body}"))
        .to_string();
    let recovered = body["recovered"]
        .as_bool()
        .unwrap_or_else(|| panic!("poll answer without recovered: {body}"));
    for e in &events {
        for field in ["topic", "id", "type", "ts"] {
            assert!(!e[field].is_null(), "polled event without {field}: {e}");
        }
    }
    (events, cursor, recovered)
}

/// Asserts that, per topic, events come in increasing id order.
fn assert_ordered_per_topic(events: &[Value]) {
    let mut last: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in events {
        let topic = e["topic"].as_str().unwrap().to_string();
        let key = id_key(id_of(e));
        if let Some(prev) = last.insert(topic.clone(), key) {
            assert!(
                prev < key,
                "{topic}: events out of order or repeated at {e}"
            );
        }
    }
}

/// Asserts that `events` hold every seq of `expected` exactly once.
fn assert_each_once(events: &[Value], expected: std::ops::Range<u64>) {
    let mut seqs: Vec<u64> = events.iter().map(seq_of).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        expected.collect::<Vec<_>>(),
        "every event exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_alternating_gateways_gets_every_event_exactly_once() {
    long_poll_across_gateways(&TestRedis::start()).await;
}

/// The scenario itself, on one Redis or a cluster (see `cluster`).
pub(crate) async fn long_poll_across_gateways(redis: &impl RedisTarget) {
    const N: u64 = 60;
    let gws = [
        Arc::new(gateway(redis).spawn().await),
        Arc::new(gateway(redis).spawn().await),
    ];
    let (events, mut cursor, _) = {
        let (status, body) = poll(&gws[0], &[("topics", "pa,pb"), ("wait", "0")]).await;
        poll_ok(status, &body)
    };
    assert!(events.is_empty(), "nothing was published yet: {events:?}");

    let publisher = {
        let gws = gws.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let topic = if i % 2 == 0 { "pa" } else { "pb" };
                publish(
                    &gws[(i / 2 % 2) as usize],
                    topic,
                    "test.seq",
                    json!({"seq": i}),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut turn = 0;
    while (seen.len() as u64) < N {
        assert!(
            Instant::now() < deadline,
            "only {} of {N} events polled in time",
            seen.len()
        );
        let gw = &gws[turn % 2];
        turn += 1;
        let (status, body) = poll(
            gw,
            &[("topics", "pa,pb"), ("cursor", &cursor), ("wait", "5")],
        )
        .await;
        let (events, next, recovered) = poll_ok(status, &body);
        assert!(recovered, "nothing was trimmed: {body}");
        let ts: Vec<u64> = events.iter().map(|e| e["ts"].as_u64().unwrap()).collect();
        assert!(
            ts.windows(2).all(|w| w[0] <= w[1]),
            "one answer must be oldest first across topics: {body}"
        );
        seen.extend(events);
        cursor = next;
    }
    tokio::time::timeout(T, publisher)
        .await
        .expect("publisher finished")
        .unwrap();
    assert!(turn >= 2, "both gateways should have served polls");
    assert_each_once(&seen, 0..N);
    assert_ordered_per_topic(&seen);

    // Nothing more to give, from either gateway.
    for gw in &gws {
        let (status, body) = poll(
            gw,
            &[("topics", "pa,pb"), ("cursor", &cursor), ("wait", "0")],
        )
        .await;
        let (events, _, _) = poll_ok(status, &body);
        assert!(events.is_empty(), "duplicates after the end: {events:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_returns_early_when_an_event_arrives_and_waits_when_none() {
    let redis = TestRedis::start();
    let a = gateway(&redis).spawn().await;
    let b = Arc::new(gateway(&redis).spawn().await);
    let (status, body) = poll(&a, &[("topics", "lp"), ("wait", "0")]).await;
    let (_, cursor, _) = poll_ok(status, &body);

    let started = Instant::now();
    let waiter = {
        let b = b.clone();
        let cursor = cursor.clone();
        tokio::spawn(async move {
            poll(&b, &[("topics", "lp"), ("cursor", &cursor), ("wait", "20")]).await
        })
    };
    // Give the poll time to be waiting; if it is not yet, the event is simply
    // found on arrival, and the assertions below hold all the same.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = publish(&a, "lp", "test.seq", json!({"seq": 0})).await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the long-poll did not return within 10 s of the event (wait=20)")
        .unwrap();
    let (events, cursor, _) = poll_ok(status, &body);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(id_of(&events[0]), id);

    // With nothing to give, the poll waits about `wait` seconds.
    let started = Instant::now();
    let (status, body) = poll(&a, &[("topics", "lp"), ("cursor", &cursor), ("wait", "1")]).await;
    let (events, _, _) = poll_ok(status, &body);
    let took = started.elapsed();
    assert!(events.is_empty(), "{body}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "wait=1 took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_without_cursor_starts_at_the_end_and_since_names_a_start() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).spawn().await;
    let ids = publish_seqs(&gw, "pe", 0..3).await;

    let (status, body) = poll(&gw, &[("topics", "pe"), ("wait", "0")]).await;
    let (events, cursor, _) = poll_ok(status, &body);
    assert!(
        events.is_empty(),
        "without a cursor, polling starts at the end: {body}"
    );

    publish_seqs(&gw, "pe", 3..4).await;
    let (status, body) = poll(&gw, &[("topics", "pe"), ("cursor", &cursor), ("wait", "5")]).await;
    let (events, _, recovered) = poll_ok(status, &body);
    assert!(recovered);
    assert_seqs(&events, "pe", 3..4);

    let (status, body) = poll(&gw, &[("topics", "pe"), ("since", &ids[0]), ("wait", "0")]).await;
    let (events, _, recovered) = poll_ok(status, &body);
    assert!(recovered, "{body}");
    assert_seqs(&events, "pe", 1..4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_after_trimmed_history_is_not_recovered_but_gets_what_is_kept() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).env("RELAY_HISTORY_SIZE", "5").spawn().await;
    let (status, body) = poll(&gw, &[("topics", "pt"), ("wait", "0")]).await;
    let (_, cursor, _) = poll_ok(status, &body);
    publish_seqs(&gw, "pt", 0..20).await;
    let (status, body) = poll(&gw, &[("topics", "pt"), ("cursor", &cursor), ("wait", "0")]).await;
    let (events, _, recovered) = poll_ok(status, &body);
    assert!(
        !recovered,
        "15 events were trimmed after the cursor: {body}"
    );
    assert_seqs(&events, "pt", 15..20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_poll_requests_are_refused_with_400() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).spawn().await;
    for params in [
        vec![
            ("topics", "pa"),
            ("cursor", "!!not-a-cursor!!"),
            ("wait", "0"),
        ],
        vec![("topics", "bad topic"), ("wait", "0")],
        vec![("wait", "0")],
    ] {
        let (status, body) = poll(&gw, &params).await;
        assert_eq!(status, 400, "{params:?}: {body}");
        error_code(&body);
    }
    let (status, body) = poll(&gw, &[("topics", "bad topic"), ("wait", "0")]).await;
    assert_eq!((status, error_code(&body)), (400, "BAD_TOPIC"), "{body}");
}

/// Opens `GET /v1/sse` with these query parameters.
async fn open_sse(
    gw: &TestGateway,
    params: &[(&str, &str)],
    last_event_id: Option<&str>,
) -> SseStream {
    let url = reqwest::Url::parse_with_params(&gw.http_url("/v1/sse"), params).unwrap();
    let s = SseStream::open(gw.http(), url.as_str(), last_event_id).await;
    assert_eq!(s.status(), 200, "GET {url}");
    assert!(
        s.content_type().starts_with("text/event-stream"),
        "content-type {}",
        s.content_type()
    );
    s
}

/// The events (data as JSON) of SSE messages, which must each carry an id.
fn sse_events(messages: &[relay_testkit::SseEvent]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| {
            assert!(
                m.id.as_deref().is_some_and(|id| !id.is_empty()),
                "SSE event without an id: {m:?}"
            );
            m.json()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_events_and_last_event_id_resumes_on_another_gateway() {
    sse_resume_across_gateways(&TestRedis::start()).await;
}

/// The scenario itself, on one Redis or a cluster (see `cluster`).
pub(crate) async fn sse_resume_across_gateways(redis: &impl RedisTarget) {
    let a = gateway(redis).spawn().await;
    let b = gateway(redis).spawn().await;
    let topic = |i: u64| if i % 2 == 0 { "sa" } else { "sb" };
    publish(&a, "sa", "test.seq", json!({"seq": 999})).await; // before the stream: not sent

    let mut s = open_sse(&a, &[("topics", "sa,sb")], None).await;
    for i in 0..5 {
        publish(
            if i % 2 == 0 { &a } else { &b },
            topic(i),
            "test.seq",
            json!({"seq": i}),
        )
        .await;
    }
    let got = s.next_events(3, T).await;
    let events = sse_events(&got);
    // Order is promised within a topic, not across topics.
    assert_each_once(&events, 0..3);
    assert_ordered_per_topic(&events);
    for e in &events {
        assert_eq!(e["topic"], topic(seq_of(e)), "{e}");
        assert_eq!(e["type"], "test.seq");
    }
    let resume = got[2].id.clone().unwrap();
    drop(s);

    for i in 5..9 {
        publish(&b, topic(i), "test.seq", json!({"seq": i})).await;
    }
    let mut s2 = open_sse(&b, &[("topics", "sa,sb")], Some(&resume)).await;
    let events = sse_events(&s2.next_events(6, T).await);
    assert_each_once(&events, 3..9);
    assert_ordered_per_topic(&events);
    s2.assert_silent(QUIET).await;

    publish(&a, "sb", "test.seq", json!({"seq": 9})).await;
    let live = sse_events(&s2.next_events(1, T).await);
    assert_eq!(seq_of(&live[0]), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_cursor_parameter_resumes_like_last_event_id() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).spawn().await;
    let mut s = open_sse(&gw, &[("topics", "sc")], None).await;
    publish_seqs(&gw, "sc", 0..3).await;
    let got = s.next_events(3, T).await;
    assert_seqs(&sse_events(&got), "sc", 0..3);
    drop(s);

    let cursor = got[0].id.clone().unwrap();
    let mut s2 = open_sse(&gw, &[("topics", "sc"), ("cursor", &cursor)], None).await;
    assert_seqs(&sse_events(&s2.next_events(2, T).await), "sc", 1..3);
    s2.assert_silent(QUIET).await;

    // A fresh stream without a cursor starts at the end.
    let mut s3 = open_sse(&gw, &[("topics", "sc")], None).await;
    publish_seqs(&gw, "sc", 3..4).await;
    assert_seqs(&sse_events(&s3.next_events(1, T).await), "sc", 3..4);
}
