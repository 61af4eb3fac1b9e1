//! Clients that fall behind or go silent: a consumer that stops reading is
//! closed with 4008 without slowing the others; a client that answers no
//! pings is closed after two heartbeat intervals.

use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_testkit::{publish, RawWs, TestRedis, WsClient};
use serde_json::json;

use crate::support::{assert_seqs, gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_with_4008_while_a_fast_one_gets_everything() {
    // 400 events of ~16 KB (6.4 MB): more than a 16-frame send queue plus the
    // socket buffers of a client that reads nothing (about 170 events fit).
    const N: u64 = 400;
    let redis = TestRedis::start();
    let gw = Arc::new(gateway(&redis).env("RELAY_SEND_QUEUE", "16").spawn().await);
    let topic = "firehose";

    let mut slow = RawWs::connect(gw.addr(), "/v1/ws", Some(4096)).await;
    slow.send_text(&json!({"op": "subscribe", "id": 1, "topic": topic}).to_string())
        .await;
    let texts = slow.read_texts(2, Duration::from_secs(10)).await;
    assert!(
        texts[1].contains("\"subscribed\""),
        "slow client's subscribe failed: {texts:?}"
    );

    let (mut fast, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    fast.subscribe_ok(1, topic, None, None).await;
    let reader = tokio::spawn(async move {
        let mut events = Vec::with_capacity(N as usize);
        while events.len() < N as usize {
            events.extend(fast.recv_events(1, Duration::from_secs(30)).await);
        }
        (events, fast)
    });

    let padding = "p".repeat(16 * 1024);
    for i in 0..N {
        publish(&gw, topic, "test.big", json!({"seq": i, "pad": padding})).await;
    }
    // The slow client reads again as soon as the burst is over: what it was
    // sent must end with a 4008 close frame.
    let end = slow
        .read_until_closed(Duration::from_secs(20))
        .await
        .expect("slow client was never closed");
    assert_eq!(
        end.code,
        Some(4008),
        "a slow consumer must be closed with 4008; it got {} events, then: {}",
        end.texts,
        end.ended
    );
    assert!(
        (end.texts as u64) < N,
        "the slow client cannot have received everything: {end:?}"
    );

    let (events, mut fast) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("fast reader")
        .unwrap();
    assert_seqs(&events, topic, 0..N);
    fast.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_no_pings_is_closed_after_two_heartbeats() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).env("RELAY_HEARTBEAT", "1s").spawn().await;
    let started = Instant::now();
    let mut silent = RawWs::connect(gw.addr(), "/v1/ws", None).await;
    let (mut live, welcome) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    assert_eq!(welcome["heartbeat_ms"], 1000, "{welcome}");

    // The live client keeps reading (and so answers pings) while the silent
    // one only reads: it never sends a pong or anything else.
    let silent_end = async {
        let end = silent.read_until_closed(Duration::from_secs(8)).await;
        (end, started.elapsed())
    };
    let ((end, closed_after), ()) =
        tokio::join!(silent_end, live.assert_silent(Duration::from_secs(5)));
    let end = end.expect("a client silent for 8 heartbeats of 1 s is still connected");
    assert!(end.pings >= 1, "the server never pinged: {end:?}");
    assert!(
        closed_after >= Duration::from_millis(1500),
        "closed after {closed_after:?}, before two intervals of silence"
    );
    assert!(
        closed_after < Duration::from_secs(6),
        "closed only after {closed_after:?} (heartbeat 1 s)"
    );

    // Four intervals later, the client that answers is still there.
    assert!(started.elapsed() >= Duration::from_secs(4));
    live.ping_pong().await;
}
