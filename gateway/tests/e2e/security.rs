//! Security at the edge, with real tokens against real processes: token
//! verification (HS256, RS256, ES256; refused tokens answer 401 before any
//! upgrade), expiry of an open WebSocket (4001), who may read, list and
//! cancel which job and read or publish which topic, and the limits that
//! protect the gateway (frame and request rates, connections per user, body
//! size, browser origins, slow request headers), each counted in
//! `relay_gateway_limit_hits_total`.
//!
//! The 1009 close of an oversized WebSocket frame is tested in
//! `protocol_errors::a_frame_over_the_size_limit_closes_with_1009`. One
//! plain test keeps `SECURITY.md`'s limits table in step with the README.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use relay_testkit::jwt::{self, KeyKind, KeyPair};
use relay_testkit::{
    eventually, publish, GatewayBuilder, SseStream, TestGateway, TestPostgres, TestRedis,
    TestWorker, WsClient, API_KEY,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{error_code, gateway, metric_sum, QUIET, T};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type RefusedUpgrade = tungstenite::http::Response<Option<Vec<u8>>>;

/// A gateway with `RELAY_AUTH=jwt` and the test HS256 secret.
fn jwt_gateway(redis: &TestRedis) -> GatewayBuilder {
    gateway(redis)
        .env("RELAY_AUTH", "jwt")
        .env("RELAY_JWT_SECRET", jwt::SECRET)
}

/// An HS256 token for `sub` with extra claims merged in.
fn token(sub: &str, extra: Value) -> String {
    let mut claims = jwt::claims(sub);
    if let (Value::Object(c), Value::Object(e)) = (&mut claims, extra) {
        c.extend(e);
    }
    jwt::hs256(&claims)
}

/// `/v1/ws?token=...` on `gw`.
fn ws_url(gw: &TestGateway, token: &str) -> String {
    gw.ws_url(&format!("/v1/ws?token={token}"))
}

/// Upgrades `url` with these extra request headers (lower-case names);
/// returns the socket, or the refusal's HTTP response.
async fn upgrade(url: &str, headers: &[(&'static str, &str)]) -> Result<Ws, Box<RefusedUpgrade>> {
    let mut req = url.into_client_request().expect("ws request");
    for (name, value) in headers {
        req.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    match tokio::time::timeout(T, tokio_tungstenite::connect_async(req)).await {
        Err(_) => panic!("upgrade of {url} got no answer within {T:?}"),
        Ok(Ok((ws, resp))) => {
            assert_eq!(resp.status(), 101);
            Ok(ws)
        }
        Ok(Err(tungstenite::Error::Http(resp))) => Err(resp),
        Ok(Err(e)) => panic!("upgrade of {url} failed without an HTTP answer: {e}"),
    }
}

/// Asserts that the upgrade is refused with `status` before any WebSocket
/// exists, and with the contract's error body carrying `code`.
async fn assert_upgrade_refused(
    url: &str,
    headers: &[(&'static str, &str)],
    status: u16,
    code: &str,
    why: &str,
) -> RefusedUpgrade {
    match upgrade(url, headers).await {
        Ok(_) => panic!("{why}: the upgrade was accepted, expected {status}"),
        Err(resp) => {
            assert_eq!(resp.status().as_u16(), status, "{why}: {resp:?}");
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{why}: refusal body is not JSON ({e}): {resp:?}"));
            assert_eq!(error_code(&body), code, "{why}: {body}");
            *resp
        }
    }
}

/// Reads the first frame of a raw socket, which must be `welcome`.
async fn expect_welcome(ws: &mut Ws) {
    let frame = tokio::time::timeout(T, ws.next())
        .await
        .expect("no welcome in time")
        .expect("socket ended before welcome")
        .expect("socket error before welcome");
    let Message::Text(text) = frame else {
        panic!("expected a text welcome, got {frame:?}")
    };
    let v: Value = serde_json::from_str(text.as_str()).expect("welcome is JSON");
    assert_eq!(v["op"], "welcome", "{v}");
}

/// `GET path` with `Authorization: Bearer token`; status and JSON body (or null).
async fn get_as(gw: &TestGateway, path: &str, token: &str) -> (u16, Value) {
    let r = gw
        .http()
        .get(gw.http_url(path))
        .bearer_auth(token)
        .timeout(T)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `POST path` with a JSON body and `Authorization: Bearer token`.
async fn post_as(gw: &TestGateway, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let r = gw
        .http()
        .post(gw.http_url(path))
        .bearer_auth(token)
        .json(body)
        .timeout(T)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The status of `GET /v1/sse?topics=...` as `token` (the stream is dropped).
async fn sse_status(gw: &TestGateway, topics: &str, token: &str) -> u16 {
    let url = gw.http_url(&format!("/v1/sse?topics={topics}&token={token}"));
    SseStream::open(gw.http(), &url, None).await.status()
}

/// `relay_gateway_limit_hits_total{limit="<limit>"}` on `gw` (0 when absent).
async fn limit_hits(gw: &TestGateway, limit: &str) -> f64 {
    let text = gw.get("/metrics").await.text().await.unwrap_or_default();
    let label = format!("limit=\"{limit}\"");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("relay_gateway_limit_hits_total") && l.contains(&label))
        .collect();
    metric_sum(&lines.join("\n"), |n| n == "relay_gateway_limit_hits_total").unwrap_or(0.0)
}

/// Whether tests needing `openssl` may run; in CI its absence fails the test.
fn openssl_or_skip(test: &str) -> bool {
    if jwt::openssl_available() {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "{test}: the openssl command is missing (Debian package openssl; .ci/run installs it)"
    );
    eprintln!("skipping {test}: the openssl command is not installed");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_401_before_the_upgrade_and_on_http() {
    const AUD: &str = "relay-tests";
    const ISS: &str = "https://issuer.test";
    let redis = TestRedis::start();
    let gw = jwt_gateway(&redis)
        .env("RELAY_JWT_AUDIENCE", AUD)
        .env("RELAY_JWT_ISSUER", ISS)
        .spawn()
        .await;
    let now = jwt::now();
    let good = json!({"sub": "alice", "exp": now + 3600, "aud": AUD, "iss": ISS});
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let bad: Vec<(&str, String)> = vec![
        (
            "wrong signature",
            jwt::hs256_with("another-secret-0123456789abcdef", &good),
        ),
        // Beyond the 30 s leeway.
        ("expired", jwt::hs256(&with("exp", json!(now - 120)))),
        ("wrong audience", jwt::hs256(&with("aud", json!("other")))),
        ("missing audience", jwt::hs256(&without("aud"))),
        (
            "wrong issuer",
            jwt::hs256(&with("iss", json!("https://evil.test"))),
        ),
        ("missing issuer", jwt::hs256(&without("iss"))),
        ("missing sub", jwt::hs256(&without("sub"))),
        ("empty sub", jwt::hs256(&with("sub", json!("")))),
        ("missing exp", jwt::hs256(&without("exp"))),
        ("alg none", jwt::unsigned(&good)),
        ("garbage", "not.a.token".to_string()),
        ("empty", String::new()),
    ];
    for (why, token) in &bad {
        assert_upgrade_refused(&ws_url(&gw, token), &[], 401, "UNAUTHORIZED", why).await;
        let bearer = format!("Bearer {token}");
        assert_upgrade_refused(
            &gw.ws_url("/v1/ws"),
            &[("authorization", bearer.as_str())],
            401,
            "UNAUTHORIZED",
            why,
        )
        .await;
        let (status, body) = get_as(&gw, "/v1/poll?topics=broadcast", token).await;
        assert_eq!(status, 401, "{why}: poll answered {body}");
        assert_eq!(error_code(&body), "UNAUTHORIZED", "{why}: {body}");
        assert_eq!(sse_status(&gw, "broadcast", token).await, 401, "{why}: SSE");
        let (status, body) = post_as(
            &gw,
            "/v1/send",
            token,
            &json!({"topic": "broadcast", "type": "t"}),
        )
        .await;
        assert_eq!(status, 401, "{why}: send answered {body}");
    }
    // No token at all.
    assert_upgrade_refused(&gw.ws_url("/v1/ws"), &[], 401, "UNAUTHORIZED", "no token").await;
    assert_eq!(gw.get("/v1/poll?topics=broadcast").await.status(), 401);

    // The good token works in the header and in `?token=`, on every transport.
    let good = jwt::hs256(&good);
    let bearer = format!("Bearer {good}");
    let mut ws = upgrade(&gw.ws_url("/v1/ws"), &[("authorization", bearer.as_str())])
        .await
        .expect("a valid token in Authorization is accepted");
    expect_welcome(&mut ws).await;
    let (mut c, _) = WsClient::connect_welcomed(&ws_url(&gw, &good)).await;
    c.subscribe_ok(1, "broadcast", None, None).await;
    let (status, body) = get_as(&gw, "/v1/poll?topics=broadcast", &good).await;
    assert_eq!(status, 200, "{body}");
    let status = gw
        .status_of(&format!("/v1/poll?topics=broadcast&token={good}"))
        .await;
    assert_eq!(status, Some(200), "poll with ?token=");
    let mut sse = SseStream::open(
        gw.http(),
        &gw.http_url(&format!("/v1/sse?topics=broadcast&token={good}")),
        None,
    )
    .await;
    assert_eq!(sse.status(), 200, "SSE with ?token=");
    publish(&gw, "broadcast", "note", json!({"n": 1})).await;
    assert_eq!(sse.next_event(T).await.json()["data"]["n"], 1);
    assert_eq!(c.recv_events(1, T).await[0]["data"]["n"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_tokens_are_verified_with_the_public_key() {
    if !openssl_or_skip("rs256_and_es256_tokens_are_verified_with_the_public_key") {
        return;
    }
    let redis = TestRedis::start();
    for kind in [KeyKind::Rs256, KeyKind::Es256] {
        let keys = KeyPair::generate(kind).expect("openssl");
        let other = KeyPair::generate(kind).expect("openssl");
        let other_kind = KeyPair::generate(match kind {
            KeyKind::Rs256 => KeyKind::Es256,
            KeyKind::Es256 => KeyKind::Rs256,
        })
        .expect("openssl");
        let gw = gateway(&redis)
            .env("RELAY_AUTH", "jwt")
            .env("RELAY_JWT_PUBLIC_KEY", &keys.public_pem)
            .spawn()
            .await;
        let claims = jwt::claims("alice");
        let good = keys.sign(&claims);
        let (mut c, _) = WsClient::connect_welcomed(&ws_url(&gw, &good)).await;
        c.ping_pong().await;
        let (status, body) = get_as(&gw, "/v1/poll?topics=user:alice", &good).await;
        assert_eq!(status, 200, "{kind:?}: {body}");

        let refused = [
            ("signed with another key", other.sign(&claims)),
            (
                "signed with a key of the other kind",
                other_kind.sign(&claims),
            ),
            // Algorithm confusion: the public key used as an HS256 secret.
            (
                "HS256 with the public key",
                jwt::hs256_with(&keys.public_pem, &claims),
            ),
            ("HS256 with the test secret", jwt::hs256(&claims)),
            ("alg none", jwt::unsigned(&claims)),
        ];
        for (why, token) in &refused {
            let why = format!("{kind:?}: {why}");
            assert_upgrade_refused(&ws_url(&gw, token), &[], 401, "UNAUTHORIZED", &why).await;
            let (status, body) = get_as(&gw, "/v1/poll?topics=user:alice", token).await;
            assert_eq!(status, 401, "{why}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_closed_with_4001_when_its_token_expires() {
    let redis = TestRedis::start();
    let gw = jwt_gateway(&redis).spawn().await;

    // Expires in 3 s: the connection works until then, and is closed at
    // `exp` (the gateway's clock, without the leeway) with 4001.
    let exp = jwt::now() + 3;
    let short = jwt::hs256(&json!({"sub": "alice", "exp": exp}));
    let opened = Instant::now();
    let (mut c, _) = WsClient::connect_welcomed(&ws_url(&gw, &short)).await;
    c.subscribe_ok(1, "broadcast", None, None).await;
    c.ping_pong().await;
    publish(&gw, "broadcast", "note", json!({})).await;
    c.recv_events(1, T).await;
    assert_eq!(
        c.close_code(T).await,
        Some(4001),
        "an expired token closes the socket with 4001"
    );
    let open_for = opened.elapsed();
    assert!(
        open_for >= Duration::from_millis(1500) && open_for < Duration::from_secs(6),
        "closed {open_for:?} after opening, with exp 3 s ahead"
    );
    assert!(jwt::now() + 1 >= exp, "closed before exp");

    // A token past `exp` but within the 30 s leeway is accepted at the
    // upgrade (clock skew), and the socket is closed with 4001 at once.
    let skewed = jwt::hs256(&json!({"sub": "alice", "exp": jwt::now() - 5}));
    let mut c = WsClient::connect(&ws_url(&gw, &skewed)).await;
    assert_eq!(c.close_code(Duration::from_secs(5)).await, Some(4001));
    let (status, _) = get_as(&gw, "/v1/poll?topics=broadcast", &skewed).await;
    assert_eq!(status, 200, "within the leeway, HTTP requests are served");

    // Beyond the leeway, the token is refused.
    let expired = jwt::hs256(&json!({"sub": "alice", "exp": jwt::now() - 40}));
    assert_upgrade_refused(&ws_url(&gw, &expired), &[], 401, "UNAUTHORIZED", "expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_and_long_polls_end_at_the_token_s_expiry() {
    let redis = TestRedis::start();
    let gw = jwt_gateway(&redis).spawn().await;
    let exp = jwt::now() + 3;
    let short = jwt::hs256(&json!({"sub": "alice", "exp": exp}));
    let opened = Instant::now();

    // An SSE stream serves events until `exp`, then says why and ends.
    let url = gw.http_url(&format!("/v1/sse?topics=broadcast&token={short}"));
    let mut sse = SseStream::open(gw.http(), &url, None).await;
    assert_eq!(sse.status(), 200);
    publish(&gw, "broadcast", "note", json!({"n": 1})).await;
    let first = sse.next_event(T).await;
    assert_eq!(first.json()["data"]["n"], 1, "{first:?}");

    // A long-poll asked to wait 30 s returns at `exp` instead.
    let polled = Instant::now();
    let (status, body) = get_as(&gw, "/v1/poll?topics=broadcast&wait=30", &short).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        polled.elapsed() < Duration::from_secs(8),
        "a long-poll outlived its token by {:?}",
        polled.elapsed()
    );

    let last = sse
        .next_or_end(Duration::from_secs(10))
        .await
        .expect("an event telling why the stream ends");
    assert_eq!(last.event.as_deref(), Some("expired"), "{last:?}");
    assert_eq!(last.json()["code"], "UNAUTHORIZED");
    assert_eq!(sse.next_or_end(T).await, None, "the stream ends after it");
    assert!(jwt::now() + 1 >= exp, "ended before exp");
    assert!(opened.elapsed() < Duration::from_secs(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_and_cancel_only_their_own_jobs() {
    let pg = TestPostgres::start();
    let redis = TestRedis::start();
    let gw = jwt_gateway(&redis).postgres(&pg).spawn().await;
    let _worker = TestWorker::builder()
        .redis(&redis)
        .postgres(&pg)
        .spawn()
        .await;
    eventually!(
        Duration::from_secs(20),
        gw.status_of("/readyz").await == Some(200)
    );
    let alice = token("alice", json!({}));
    let bob = token("bob", json!({"topics": ["**"]}));
    let admin = token("root", json!({"admin": true}));

    let (status, accepted) = post_as(
        &gw,
        "/v1/jobs",
        &alice,
        &json!({"kind": "sleep", "payload": {"ms": 60000, "steps": 600}}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().expect("job id").to_string();
    let topic = format!("job:{id}");

    // Alice follows her job while it runs.
    let (mut a, _) = WsClient::connect_welcomed(&ws_url(&gw, &alice)).await;
    a.subscribe_ok(1, &topic, Some("0"), None).await;
    a.recv_until(Duration::from_secs(20), |f| f["type"] == "job.progress")
        .await;
    let (status, job) = get_as(&gw, &format!("/v1/jobs/{id}"), &alice).await;
    assert_eq!(
        (status, job["owner"].as_str()),
        (200, Some("alice")),
        "{job}"
    );
    let (status, list) = get_as(&gw, "/v1/jobs", &alice).await;
    assert_eq!(status, 200, "{list}");
    assert!(list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["id"] == id.as_str()));
    let (status, body) = get_as(&gw, &format!("/v1/poll?topics={topic}"), &alice).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sse_status(&gw, &topic, &alice).await, 200);

    // Bob (even with a `topics: ["**"]` claim) sees nothing of it.
    let (status, body) = get_as(&gw, &format!("/v1/jobs/{id}"), &bob).await;
    assert_eq!(status, 404, "another's job is as if absent: {body}");
    let (status, list) = get_as(&gw, "/v1/jobs", &bob).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["jobs"], json!([]), "bob lists only his own jobs");
    let (status, body) = post_as(&gw, &format!("/v1/jobs/{id}/cancel"), &bob, &json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get_as(&gw, &format!("/v1/poll?topics={topic}"), &bob).await;
    assert_eq!((status, error_code(&body)), (403, "FORBIDDEN"), "{body}");
    let (status, body) = get_as(&gw, &format!("/v1/poll?topics=broadcast,{topic}"), &bob).await;
    assert_eq!(status, 403, "one forbidden topic refuses the poll: {body}");
    assert_eq!(sse_status(&gw, &topic, &bob).await, 403);
    let (mut b, _) = WsClient::connect_welcomed(&ws_url(&gw, &bob)).await;
    let (reply, _) = b.subscribe(1, &topic, Some("0"), None).await;
    assert_eq!(
        (reply["op"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("FORBIDDEN")),
        "{reply}"
    );
    for t in ["jobs", "user:alice"] {
        let (reply, _) = b.subscribe(2, t, None, None).await;
        assert_eq!(reply["code"], "FORBIDDEN", "{t}: {reply}");
    }
    b.ping_pong().await;

    // An admin sees and lists everything, and follows `jobs`.
    let (status, job) = get_as(&gw, &format!("/v1/jobs/{id}"), &admin).await;
    assert_eq!(status, 200, "{job}");
    let (_, list) = get_as(&gw, "/v1/jobs", &admin).await;
    assert!(list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["id"] == id.as_str()));
    let (mut r, _) = WsClient::connect_welcomed(&ws_url(&gw, &admin)).await;
    r.subscribe_ok(1, &topic, None, None).await;
    r.subscribe_ok(2, "jobs", None, None).await;
    r.subscribe_ok(3, "user:alice", None, None).await;

    // Bob's cancel did nothing; Alice's works, and Bob still gets 404, not 409.
    let (status, job) = get_as(&gw, &format!("/v1/jobs/{id}"), &alice).await;
    assert_eq!(
        (status, job["state"].as_str()),
        (200, Some("running")),
        "{job}"
    );
    let (status, body) = post_as(&gw, &format!("/v1/jobs/{id}/cancel"), &alice, &json!({})).await;
    assert_eq!(status, 202, "{body}");
    a.recv_until(Duration::from_secs(20), |f| f["type"] == "job.cancelled")
        .await;
    let (status, body) = post_as(&gw, &format!("/v1/jobs/{id}/cancel"), &bob, &json!({})).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_permissions_follow_the_claims() {
    let redis = TestRedis::start();
    let gw = jwt_gateway(&redis).spawn().await;
    let bob = token(
        "bob",
        json!({"topics": ["chat:*"], "publish": ["chat:*", "user:bob"]}),
    );
    let carol = token("carol", json!({"topics": ["chat:**"]}));
    let alice = token("alice", json!({}));

    let (mut b, _) = WsClient::connect_welcomed(&ws_url(&gw, &bob)).await;
    for (id, t) in [(1, "user:bob"), (2, "broadcast"), (3, "chat:room1")] {
        b.subscribe_ok(id, t, None, None).await;
    }
    for (id, t) in [
        (4, "user:alice"),
        (5, "jobs"),
        (6, "chat:room1:thread"),
        (7, "chat"),
        (8, "news:1"),
    ] {
        let (reply, _) = b.subscribe(id, t, None, None).await;
        assert_eq!(
            (reply["op"].as_str(), reply["code"].as_str()),
            (Some("error"), Some("FORBIDDEN")),
            "bob subscribing to {t}: {reply}"
        );
        assert_eq!(reply["retryable"], false, "{reply}");
    }
    let (mut c, _) = WsClient::connect_welcomed(&ws_url(&gw, &carol)).await;
    c.subscribe_ok(1, "chat:room1:thread", None, None).await;
    c.subscribe_ok(2, "chat:room1", None, None).await;
    let (reply, _) = c.subscribe(3, "chat", None, None).await;
    assert_eq!(
        reply["code"], "FORBIDDEN",
        "`chat:**` needs a segment: {reply}"
    );

    // The same rules on poll and SSE.
    for (t, status) in [
        ("user:alice", 403),
        ("jobs", 403),
        ("news:1", 403),
        ("chat:room1", 200),
        ("user:bob", 200),
        ("broadcast", 200),
    ] {
        let (got, body) = get_as(&gw, &format!("/v1/poll?topics={t}"), &bob).await;
        assert_eq!(got, status, "bob polling {t}: {body}");
        assert_eq!(sse_status(&gw, t, &bob).await, status, "bob's SSE on {t}");
    }
    let (status, _) = get_as(&gw, "/v1/poll?topics=broadcast", &alice).await;
    assert_eq!(status, 200, "broadcast is open to everyone");

    // Publishing follows the `publish` claim, on the WebSocket and on /v1/send.
    b.send_json(&json!({"op": "publish", "id": 10, "topic": "chat:room1", "type": "message", "data": {"text": "hi"}}))
        .await;
    let ack = b
        .recv_until(T, |f| f["id"] == 10 && f["op"] != "event")
        .await
        .pop()
        .unwrap();
    assert_eq!(ack["op"], "ack", "{ack}");
    let heard = c.recv_events(1, T).await;
    assert_eq!(heard[0]["data"]["text"], "hi");
    for (id, t) in [
        (11, "news:1"),
        (12, "broadcast"),
        (13, "jobs"),
        (14, "user:alice"),
        (15, "chat:room1:thread"),
        (16, "job:x"),
    ] {
        b.send_json(&json!({"op": "publish", "id": id, "topic": t, "type": "x"}))
            .await;
        let reply = b.recv_until(T, |f| f["id"] == id).await.pop().unwrap();
        assert_eq!(reply["code"], "FORBIDDEN", "bob publishing to {t}: {reply}");
    }
    for (t, status) in [
        ("chat:room2", 200),
        ("user:bob", 200),
        ("news:1", 403),
        ("broadcast", 403),
        ("user:alice", 403),
    ] {
        let (got, body) = post_as(
            &gw,
            "/v1/send",
            &bob,
            &json!({"topic": t, "type": "message", "data": {}}),
        )
        .await;
        assert_eq!(got, status, "bob sending to {t}: {body}");
    }
    // No `publish` claim: no publishing at all.
    let (status, body) = post_as(
        &gw,
        "/v1/send",
        &alice,
        &json!({"topic": "chat:room1", "type": "message"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Nothing bob was refused reached carol.
    c.assert_silent(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_socket_gets_rate_limit_errors_then_1008_while_others_are_served() {
    let redis = TestRedis::start();
    let gw = jwt_gateway(&redis)
        .env("RELAY_WS_MESSAGE_RATE", "20")
        .spawn()
        .await;
    let (mut calm, _) =
        WsClient::connect_welcomed(&ws_url(&gw, &token("calm", json!({"topics": ["feed"]})))).await;
    calm.subscribe_ok(1, "feed", None, None).await;
    let (mut flood, _) = WsClient::connect_welcomed(&ws_url(&gw, &token("flood", json!({})))).await;

    // 55 frames at once: about 40 (the burst) pass, the rest get
    // RATE_LIMIT errors (fewer than the 20 refusals that close the socket).
    for _ in 0..55 {
        flood.send_text("ping").await;
    }
    let mut replies = 0;
    let seen = flood
        .recv_until(T, |_| {
            replies += 1;
            replies == 55
        })
        .await;
    let pongs = seen.iter().filter(|f| f["op"] == "pong").count();
    let limited: Vec<&Value> = seen.iter().filter(|f| f["op"] == "error").collect();
    assert_eq!(pongs + limited.len(), 55, "{seen:?}");
    assert!(
        (38..=50).contains(&pongs),
        "pongs of 55 pings at 20/s, burst 40: {pongs}"
    );
    for e in &limited {
        assert_eq!(
            (e["code"].as_str(), &e["retryable"]),
            (Some("RATE_LIMIT"), &json!(true)),
            "{e}"
        );
    }

    // Meanwhile the other client is served as usual.
    publish(&gw, "feed", "tick", json!({"n": 1})).await;
    assert_eq!(calm.recv_events(1, T).await[0]["data"]["n"], 1);
    calm.ping_pong().await;

    // Keeping on: more than 20 refusals within 10 s close the socket.
    for _ in 0..100 {
        if flood.try_send(Message::text("ping")).await.is_err() {
            break; // already closed
        }
    }
    assert_eq!(
        flood.close_code(T).await,
        Some(1008),
        "a socket that keeps flooding is closed with 1008"
    );
    publish(&gw, "feed", "tick", json!({"n": 2})).await;
    assert_eq!(calm.recv_events(1, T).await[0]["data"]["n"], 2);
    calm.ping_pong().await;
    assert!(limit_hits(&gw, "ws_message_rate").await >= 21.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_rate_limit_answers_429_with_retry_after_and_spares_api_keys() {
    let redis = TestRedis::start();
    let gw = jwt_gateway(&redis)
        .env("RELAY_HTTP_RATE", "2")
        .spawn()
        .await;
    let alice = token("alice", json!({}));
    let path = "/v1/poll?topics=broadcast";

    // A burst of 4 (twice the rate), then 429 with Retry-After.
    let mut ok = 0;
    let mut refused = None;
    for _ in 0..60 {
        let r = gw
            .http()
            .get(gw.http_url(path))
            .bearer_auth(&alice)
            .timeout(T)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
        ok += 1;
    }
    let refused = refused.unwrap_or_else(|| panic!("no 429 after {ok} requests at rate 2/s"));
    assert!(ok >= 4, "the burst (twice the rate) passes: only {ok}");
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("429 carries a Retry-After in seconds");
    assert!((1..=5).contains(&retry_after), "Retry-After: {retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(error_code(&body), "RATE_LIMIT", "{body}");

    // Limited per user: another user is served.
    let (status, _) = get_as(&gw, path, &token("bob", json!({}))).await;
    assert_eq!(status, 200);
    // API-key requests are not limited.
    for i in 0..40 {
        let r = relay_testkit::try_publish(&gw, "news", "n", json!({ "i": i })).await;
        assert_eq!(r.status(), 200, "API-key request {i} was limited");
    }
    // After Retry-After, alice is served again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (status, _) = get_as(&gw, path, &alice).await;
    assert_eq!(status, 200, "served again after Retry-After");
    assert!(limit_hits(&gw, "http_rate").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_user_are_capped_and_freed_on_close() {
    let redis = TestRedis::start();
    let gw = jwt_gateway(&redis)
        .env("RELAY_MAX_CONNECTIONS_PER_USER", "2")
        .spawn()
        .await;
    let alice = token("alice", json!({}));
    let (c1, _) = WsClient::connect_welcomed(&ws_url(&gw, &alice)).await;
    let (mut c2, _) = WsClient::connect_welcomed(&ws_url(&gw, &alice)).await;
    let refused =
        assert_upgrade_refused(&ws_url(&gw, &alice), &[], 429, "RATE_LIMIT", "third socket").await;
    assert!(refused.headers().contains_key("retry-after"), "{refused:?}");
    // Another user is not affected.
    let (_bob, _) = WsClient::connect_welcomed(&ws_url(&gw, &token("bob", json!({})))).await;

    // Closing one frees its slot.
    c1.close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut third = loop {
        match upgrade(&ws_url(&gw, &alice), &[]).await {
            Ok(ws) => break ws,
            Err(resp) => {
                assert_eq!(resp.status(), 429, "{resp:?}");
                assert!(
                    Instant::now() < deadline,
                    "the closed socket's slot was not freed within 5 s"
                );
                tokio::time::sleep(relay_testkit::wait::POLL_INTERVAL).await;
            }
        }
    };
    expect_welcome(&mut third).await;
    c2.ping_pong().await;
    assert!(limit_hits(&gw, "connections_per_user").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_http_body_is_refused_with_413() {
    let redis = TestRedis::start();
    let gw = jwt_gateway(&redis)
        .env("RELAY_MAX_BODY_BYTES", "2048")
        .spawn()
        .await;
    let bob = token("bob", json!({"publish": ["chat:*"]}));
    let body = |n: usize| json!({"topic": "chat:a", "type": "m", "data": {"s": "x".repeat(n)}});
    let (status, b) = post_as(&gw, "/v1/send", &bob, &body(1000)).await;
    assert_eq!(status, 200, "under the limit: {b}");
    let (status, b) = post_as(&gw, "/v1/send", &bob, &body(4000)).await;
    assert_eq!((status, error_code(&b)), (413, "TOO_LARGE"), "{b}");
    let r = gw
        .http()
        .post(gw.http_url("/v1/publish"))
        .header("X-Api-Key", API_KEY)
        .json(&body(100_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "the server API has the same limit");
    assert_eq!(
        r.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "the unread body ends the connection, and the answer says so"
    );
    // The gateway is fine afterwards.
    let (status, _) = post_as(&gw, "/v1/send", &bob, &body(10)).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_may_open_websockets_and_get_cors() {
    const APP: &str = "https://app.example.com";
    const EVIL: &str = "https://evil.example.com";
    let redis = TestRedis::start();
    let gw = jwt_gateway(&redis)
        .env("RELAY_ALLOWED_ORIGINS", APP)
        .spawn()
        .await;
    let url = ws_url(&gw, &token("alice", json!({})));
    assert_upgrade_refused(&url, &[("origin", EVIL)], 403, "FORBIDDEN", "evil origin").await;
    let mut ws = upgrade(&url, &[("origin", APP)])
        .await
        .expect("the allowed origin is upgraded");
    expect_welcome(&mut ws).await;
    // Clients that are not browsers send no Origin.
    let mut ws = upgrade(&url, &[]).await.expect("no Origin is upgraded");
    expect_welcome(&mut ws).await;

    let preflight = |origin: &'static str| {
        gw.http()
            .request(reqwest::Method::OPTIONS, gw.http_url("/v1/poll"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .timeout(T)
            .send()
    };
    let r = preflight(APP).await.unwrap();
    assert!(r.status().is_success(), "preflight: {}", r.status());
    let h = r.headers();
    let header = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    assert_eq!(header("access-control-allow-origin"), APP);
    assert!(
        header("access-control-allow-methods").contains("get"),
        "{h:?}"
    );
    assert!(
        header("access-control-allow-headers").contains("authorization"),
        "{h:?}"
    );
    let r = preflight(EVIL).await.unwrap();
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "no CORS for a disallowed origin: {:?}",
        r.headers()
    );
    assert!(limit_hits(&gw, "origin").await >= 1.0);
}

/// Reads until the server ends the connection (within 5 s): what it sent,
/// or `None` when it is still open.
async fn dropped(mut stream: impl tokio::io::AsyncRead + Unpin) -> Option<Vec<u8>> {
    let read_all = async {
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_dropped() {
    let redis = TestRedis::start();
    let gw = jwt_gateway(&redis)
        .env("RELAY_HANDSHAKE_TIMEOUT", "1s")
        .spawn()
        .await;
    let started = Instant::now();
    // A partial request, a silent connection, and one that trickles a
    // header byte every 200 ms (bounded: 40 bytes).
    let mut partial = TcpStream::connect(gw.addr()).await.unwrap();
    partial
        .write_all(b"GET /v1/ws HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nX-Slow: ")
        .await
        .unwrap();
    let silent = TcpStream::connect(gw.addr()).await.unwrap();
    let (trickle_r, mut trickle_w) = TcpStream::connect(gw.addr()).await.unwrap().into_split();
    let trickler = tokio::spawn(async move {
        let _ = trickle_w
            .write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
            .await;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if trickle_w.write_all(b"a").await.is_err() {
                break;
            }
        }
    });
    // Normal requests are served meanwhile.
    assert_eq!(gw.get("/healthz").await.status(), 200);

    let (partial, silent, trickle) =
        tokio::join!(dropped(partial), dropped(silent), dropped(trickle_r));
    trickler.abort();
    for (who, got) in [
        ("partial", partial),
        ("silent", silent),
        ("trickle", trickle),
    ] {
        let got = got.unwrap_or_else(|| {
            panic!("a {who} client is still connected 5 s after RELAY_HANDSHAKE_TIMEOUT=1s")
        });
        let answer = String::from_utf8_lossy(&got);
        assert!(
            got.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "unexpected answer to a {who} client: {answer}"
        );
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "dropped after {waited:?}, before RELAY_HANDSHAKE_TIMEOUT=1s"
    );
    // A new connection: the pooled one from the first request sat idle
    // longer than the header timeout, so the gateway closed it too.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let after = fresh.get(gw.http_url("/healthz")).send().await.unwrap();
    assert_eq!(after.status(), 200);
}

/// `| `VAR` | `default` | ...` rows of a Markdown table: (variable, default).
fn defaults_in(markdown: &str) -> Vec<(String, String)> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix("| `RELAY_"))
        .map(|rest| {
            let cells: Vec<&str> = rest.split(" | ").collect();
            let var = format!("RELAY_{}", cells[0].trim_end_matches('`'));
            (var, cells.get(1).copied().unwrap_or_default().to_string())
        })
        .collect()
}

#[test]
fn security_md_limits_match_the_readme() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let security = std::fs::read_to_string(format!("{root}/SECURITY.md")).unwrap();
    let readme = defaults_in(&readme);
    let limits = defaults_in(&security);
    assert!(limits.len() >= 10, "SECURITY.md's limits table: {limits:?}");
    for (var, default) in &limits {
        let documented = readme.iter().find(|(v, _)| v == var);
        assert_eq!(
            documented.map(|(_, d)| d),
            Some(default),
            "{var}: SECURITY.md says {default}, README says {documented:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_and_open_streams_are_capped() {
    let redis = TestRedis::start();
    let gw = jwt_gateway(&redis)
        .env("RELAY_MAX_CONNECTIONS_PER_IP", "2")
        .env("RELAY_MAX_STREAMS", "1")
        .spawn()
        .await;
    // Different users from one address share the address's cap.
    let (_a, _) = WsClient::connect_welcomed(&ws_url(&gw, &token("alice", json!({})))).await;
    let (mut b, _) = WsClient::connect_welcomed(&ws_url(&gw, &token("bob", json!({})))).await;
    let carol = token("carol", json!({}));
    assert_upgrade_refused(
        &ws_url(&gw, &carol),
        &[],
        429,
        "RATE_LIMIT",
        "third socket from one address",
    )
    .await;
    b.ping_pong().await;
    assert!(limit_hits(&gw, "connections_per_ip").await >= 1.0);

    // One SSE stream fills the stream limit: a second one is refused with 503.
    let url = gw.http_url(&format!("/v1/sse?topics=broadcast&token={carol}"));
    let first = reqwest::get(&url).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(sse_status(&gw, "broadcast", &carol).await, 503);
    assert!(limit_hits(&gw, "streams").await >= 1.0);
    // Closing the first frees its place.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sse_status(&gw, "broadcast", &carol).await != 200 {
        assert!(
            Instant::now() < deadline,
            "the closed stream's place was not freed within 5 s"
        );
        tokio::time::sleep(relay_testkit::wait::POLL_INTERVAL).await;
    }
}
