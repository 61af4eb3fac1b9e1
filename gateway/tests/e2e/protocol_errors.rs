//! Bad input on the WebSocket: every malformed frame gets an `error` frame
//! with its code and the request id, and the connection keeps working;
//! oversized frames close with 1009; the subscription limit refuses politely.

use relay_testkit::{TestRedis, WsClient};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{gateway, publish_seqs, seq_of, QUIET, T};

/// Sends `frame` and expects an `error` frame with one of `codes` and `id`
/// echoed, then checks that the connection still answers a ping.
async fn expect_error(c: &mut WsClient, frame: &str, codes: &[&str], id: Option<Value>) {
    c.send_text(frame).await;
    let reply = c.next_json(T).await;
    assert_eq!(
        reply["op"], "error",
        "{frame} should be refused, got {reply}"
    );
    let code = reply["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error without code: {reply}"));
    assert!(
        codes.contains(&code),
        "{frame}: expected {codes:?}, got {reply}"
    );
    assert!(
        reply["message"].is_string(),
        "error without a message: {reply}"
    );
    assert_eq!(
        reply["retryable"], false,
        "{frame}: a malformed frame is not retryable: {reply}"
    );
    match id {
        Some(id) => assert_eq!(
            reply["id"], id,
            "{frame}: the request id must be echoed: {reply}"
        ),
        None => assert!(reply["id"].is_null(), "{frame}: no id to echo: {reply}"),
    }
    c.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_error_frames_and_the_connection_survives() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).spawn().await;
    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    const INVALID: &[&str] = &["INVALID_MESSAGE"];

    expect_error(&mut c, "not json", INVALID, None).await;
    expect_error(&mut c, "[1,2,3]", INVALID, None).await;
    expect_error(&mut c, "42", INVALID, None).await;
    expect_error(&mut c, r#"{"id":7}"#, INVALID, Some(json!(7))).await;
    expect_error(
        &mut c,
        r#"{"op":"dance","id":8}"#,
        &["UNKNOWN_OP"],
        Some(json!(8)),
    )
    .await;
    expect_error(
        &mut c,
        r#"{"op":"subscribe","id":9}"#,
        &["INVALID_MESSAGE", "BAD_TOPIC"],
        Some(json!(9)),
    )
    .await;
    for bad in ["a b", "", "héllo", "x/y", &"t".repeat(129)] {
        let frame = json!({"op": "subscribe", "id": 10, "topic": bad}).to_string();
        expect_error(&mut c, &frame, &["BAD_TOPIC"], Some(json!(10))).await;
    }
    expect_error(
        &mut c,
        r#"{"op":"subscribe","id":11,"topic":"ok","since":"yesterday"}"#,
        INVALID,
        Some(json!(11)),
    )
    .await;
    expect_error(
        &mut c,
        r#"{"op":"unsubscribe","id":12,"topic":"never"}"#,
        &["NOT_SUBSCRIBED"],
        Some(json!(12)),
    )
    .await;
    expect_error(
        &mut c,
        r#"{"op":"publish","id":13,"topic":"chat","data":{}}"#,
        INVALID,
        Some(json!(13)),
    )
    .await;
    expect_error(
        &mut c,
        r#"{"op":"publish","id":"r-14","topic":"bad topic!","type":"x"}"#,
        &["BAD_TOPIC"],
        Some(json!("r-14")),
    )
    .await;

    // A 128-character topic is fine.
    let longest = "t".repeat(128);
    c.subscribe_ok(15, &longest, None, None).await;

    // Bare `ping`, and `{"op":"ping"}` with an id.
    c.send_text("ping").await;
    assert_eq!(c.next_json(T).await, json!({"op": "pong"}));
    c.send_json(&json!({"op": "ping", "id": 16})).await;
    let pong = c.next_op("pong", T).await;
    assert_eq!(
        pong["id"], 16,
        "the request id is echoed in the reply: {pong}"
    );

    // Still fully working: subscribe and receive.
    c.subscribe_ok(17, "fine", None, None).await;
    publish_seqs(&gw, "fine", 0..2).await;
    let events = c.recv_events(2, T).await;
    assert_eq!(events.iter().map(seq_of).collect::<Vec<_>>(), vec![0, 1]);
    c.assert_silent(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_size_limit_closes_with_1009() {
    let redis = TestRedis::start();
    let gw = gateway(&redis)
        .env("RELAY_MAX_FRAME_BYTES", "1024")
        .spawn()
        .await;
    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;

    // Just under the limit is fine.
    let small = json!({"op": "publish", "id": 1, "topic": "big", "type": "t", "data": {"s": "x".repeat(900)}});
    assert!(small.to_string().len() < 1024);
    c.send_json(&small).await;
    let ack = c.next_op("ack", T).await;
    assert_eq!(ack["id"], 1);

    let big = json!({"op": "publish", "id": 2, "topic": "big", "type": "t", "data": {"s": "x".repeat(2000)}});
    // The server may close before the whole frame is written; a send error is fine.
    let _ = c.try_send(Message::text(big.to_string())).await;
    assert_eq!(
        c.close_code(T).await,
        Some(1009),
        "a frame over RELAY_MAX_FRAME_BYTES closes with 1009"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscription_limit_refuses_with_an_error_and_keeps_the_connection() {
    let redis = TestRedis::start();
    let gw = gateway(&redis)
        .env("RELAY_MAX_SUBSCRIPTIONS", "2")
        .spawn()
        .await;
    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    c.subscribe_ok(1, "s1", None, None).await;
    c.subscribe_ok(2, "s2", None, None).await;
    let (reply, before) = c.subscribe(3, "s3", None, None).await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(
        reply["op"], "error",
        "a third subscription is over RELAY_MAX_SUBSCRIPTIONS=2: {reply}"
    );
    assert_eq!(reply["id"], 3);
    assert!(
        reply["code"].is_string() && reply["message"].is_string(),
        "{reply}"
    );
    c.ping_pong().await;

    // The refused topic delivers nothing; the others still do.
    publish_seqs(&gw, "s3", 0..1).await;
    publish_seqs(&gw, "s1", 0..1).await;
    let events = c.recv_events(1, T).await;
    assert_eq!(events[0]["topic"], "s1", "{events:?}");
    c.assert_silent(QUIET).await;

    // Freeing a slot lets the third subscription in.
    c.send_json(&json!({"op": "unsubscribe", "id": 4, "topic": "s2"}))
        .await;
    c.next_op("unsubscribed", T).await;
    c.subscribe_ok(5, "s3", None, None).await;
}
