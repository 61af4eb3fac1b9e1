//! Builders and assertions shared by the end-to-end tests.

use std::time::Duration;

use relay_testkit::{GatewayBuilder, RedisTarget, TestGateway};
use serde_json::Value;

/// Time allowed for one expected frame or answer.
pub(crate) const T: Duration = Duration::from_secs(10);

/// Quiet time used to check that nothing more (no duplicate) arrives.
pub(crate) const QUIET: Duration = Duration::from_millis(400);

/// A gateway builder for this crate's binary, on `redis` (one server or a cluster).
pub(crate) fn gateway(redis: &impl RedisTarget) -> GatewayBuilder {
    TestGateway::builder()
        .bin(env!("CARGO_BIN_EXE_relay-gateway"))
        .redis_url(&redis.url())
}

/// An event id (`<ms>-<seq>`) as a pair that orders like the server orders ids.
pub(crate) fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("not an event id: {id:?}"));
    (
        ms.parse().unwrap_or_else(|_| panic!("bad id {id:?}")),
        seq.parse().unwrap_or_else(|_| panic!("bad id {id:?}")),
    )
}

/// The `id` of an event frame or event object.
pub(crate) fn id_of(event: &Value) -> &str {
    event["id"]
        .as_str()
        .unwrap_or_else(|| panic!("event without a string id: {event}"))
}

/// The `data.seq` of a numbered test event.
pub(crate) fn seq_of(event: &Value) -> u64 {
    event["data"]["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("event without data.seq: {event}"))
}

pub(crate) use relay_shared::clock::now_ms;

/// Publishes `{"seq": i}` for every `i` in `seqs` through `gw`, in order;
/// returns the event ids.
pub(crate) async fn publish_seqs(
    gw: &TestGateway,
    topic: &str,
    seqs: std::ops::Range<u64>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in seqs {
        ids.push(
            relay_testkit::publish(gw, topic, "test.seq", serde_json::json!({"seq": i})).await,
        );
    }
    ids
}

/// Asserts that `events` are exactly the numbered events `expected` of
/// `topic`, in order, with strictly increasing ids.
pub(crate) fn assert_seqs(events: &[Value], topic: &str, expected: std::ops::Range<u64>) {
    let got: Vec<u64> = events.iter().map(seq_of).collect();
    let want: Vec<u64> = expected.collect();
    assert_eq!(got, want, "wrong events (by data.seq)");
    for e in events {
        assert_eq!(e["topic"], topic, "event of another topic: {e}");
    }
    for pair in events.windows(2) {
        assert!(
            id_key(id_of(&pair[0])) < id_key(id_of(&pair[1])),
            "ids not increasing: {} then {}",
            pair[0],
            pair[1]
        );
    }
}

/// Events among `frames` (each must be an event frame: nothing else may be
/// mixed into a replay).
pub(crate) fn only_events(frames: Vec<Value>) -> Vec<Value> {
    for f in &frames {
        assert_eq!(f["op"], "event", "unexpected frame among events: {f}");
    }
    frames
}

/// Sums the samples of Prometheus metrics whose name satisfies `pick`
/// (labels ignored); `None` when no sample matched.
pub(crate) fn metric_sum(text: &str, pick: impl Fn(&str) -> bool) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !pick(name) {
            continue;
        }
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

/// The body of an error answer: `{"error":{"code","message"}}`; panics
/// (showing the body) when it has another shape.
pub(crate) fn error_code(body: &Value) -> &str {
    assert!(
        body["error"]["message"].is_string(),
        "error answer without error.message: {body}"
    );
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error answer without error.code: {body}"))
}
