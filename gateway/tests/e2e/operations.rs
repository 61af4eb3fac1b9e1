//! Operating the gateway: drain on SIGTERM, health and readiness, metrics,
//! the OpenAPI document, cluster-wide status, and configuration at start.

use std::process::Stdio;
use std::time::{Duration, Instant};

use relay_testkit::{eventually, publish, TestGateway, TestPostgres, TestRedis, WsClient, API_KEY};
use serde_json::{json, Value};

use crate::support::{gateway, metric_sum, T};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_with_4000_and_exits_0_within_the_grace() {
    let pg = TestPostgres::start();
    let redis = TestRedis::start();
    let mut gw = gateway(&redis)
        .postgres(&pg)
        .env("RELAY_SHUTDOWN_GRACE", "5s")
        .spawn()
        .await;
    eventually!(
        Duration::from_secs(20),
        gw.status_of("/readyz").await == Some(200)
    );
    let (mut a, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (mut b, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    a.subscribe_ok(1, "drain", None, None).await;

    let started = Instant::now();
    gw.terminate();
    // While draining, readiness is refused (or the listener is already closed).
    let mut ready: Option<u16>;
    eventually!(Duration::from_secs(2), {
        ready = gw.status_of("/readyz").await;
        ready != Some(200)
    });
    assert!(
        ready.is_none() || ready == Some(503),
        "/readyz answered {ready:?} while draining"
    );
    let (code_a, code_b) = tokio::join!(
        a.close_code(Duration::from_secs(6)),
        b.close_code(Duration::from_secs(6))
    );
    assert_eq!(code_a, Some(4000), "draining closes sockets with 4000");
    assert_eq!(code_b, Some(4000), "draining closes sockets with 4000");
    let status = gw
        .wait_exit(Duration::from_secs(7))
        .await
        .expect("gateway still running 7 s after SIGTERM (grace 5 s)");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after a drain: {status}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "drain took {:?} with a 5 s grace",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_openapi() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).spawn().await;
    assert_eq!(gw.get("/healthz").await.status(), 200);

    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    c.subscribe_ok(1, "m", None, None).await;
    publish(&gw, "m", "test.seq", json!({"seq": 0})).await;
    c.recv_events(1, T).await;

    let r = gw.get("/metrics").await;
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/plain"), "metrics content-type {ct}");
    let text = r.text().await.unwrap();
    let connections = metric_sum(&text, |n| {
        n.starts_with("relay_") && n.ends_with("connections")
    });
    assert_eq!(
        connections,
        Some(1.0),
        "a relay_*connections gauge counting the one WebSocket:\n{text}"
    );
    // The writer counts a delivery once its flush returns, which may be
    // just after the client read the frame.
    let mut text = text;
    eventually!(
        Duration::from_secs(5),
        {
            let delivered = metric_sum(&text, |n| {
                n.starts_with("relay_") && n.contains("delivered")
            });
            delivered.is_some_and(|d| d >= 1.0) || {
                text = gw.get("/metrics").await.text().await.unwrap();
                false
            }
        },
        "a relay_*delivered* counter after one delivery:\n{text}"
    );

    let r = gw.get("/openapi.json").await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.expect("/openapi.json is JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "openapi version: {}",
        doc["openapi"]
    );
    for path in ["/v1/publish", "/v1/poll", "/v1/sse", "/v1/status"] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from /openapi.json"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_every_gateway_with_its_connections() {
    let redis = TestRedis::start();
    let a = gateway(&redis)
        .env("RELAY_INSTANCE_ID", "gw-a")
        .spawn()
        .await;
    let b = gateway(&redis)
        .env("RELAY_INSTANCE_ID", "gw-b")
        .spawn()
        .await;
    let mut clients = Vec::new();
    for (gw, n) in [(&a, 2), (&b, 1)] {
        for _ in 0..n {
            let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
            c.subscribe_ok(1, "st", None, None).await;
            clients.push(c);
        }
    }

    let status = |gw: &TestGateway| {
        let req = gw
            .http()
            .get(gw.http_url("/v1/status"))
            .header("X-Api-Key", API_KEY)
            .timeout(T)
            .send();
        async move {
            let r = req.await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let connections = |body: &Value, id: &str| -> Option<u64> {
        body["gateways"]
            .as_array()?
            .iter()
            .find(|g| g["id"] == id)?["connections"]
            .as_u64()
    };
    let mut last: Value;
    eventually!(
        Duration::from_secs(20),
        {
            last = status(&b).await;
            connections(&last, "gw-a") == Some(2) && connections(&last, "gw-b") == Some(1)
        },
        "status: {last}"
    );
    for g in last["gateways"].as_array().unwrap() {
        assert!(
            g["subscriptions"].is_u64(),
            "gateway entry without subscriptions: {g}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jwt_auth_the_server_api_needs_the_key_and_websockets_a_token() {
    let redis = TestRedis::start();
    let gw = gateway(&redis)
        .env("RELAY_AUTH", "jwt")
        .env("RELAY_JWT_SECRET", "a-test-secret-of-32-characters!!")
        .spawn()
        .await;

    match WsClient::try_connect(&gw.ws_url("/v1/ws")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        Err(e) => panic!("expected HTTP 401 before the upgrade, got {e}"),
        Ok(_) => panic!("a WebSocket without a token was accepted"),
    }
    match WsClient::try_connect(&gw.ws_url("/v1/ws?token=not.a.jwt")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        Err(e) => panic!("expected HTTP 401 before the upgrade, got {e}"),
        Ok(_) => panic!("a WebSocket with a bad token was accepted"),
    }

    for key in [None, Some("wrong-key-0123456789")] {
        let mut req = gw.http().get(gw.http_url("/v1/status")).timeout(T);
        let mut publish = gw.http().post(gw.http_url("/v1/publish")).timeout(T);
        if let Some(key) = key {
            req = req.header("X-Api-Key", key);
            publish = publish.header("X-Api-Key", key);
        }
        assert_eq!(
            req.send().await.unwrap().status(),
            401,
            "/v1/status with key {key:?}"
        );
        let r = publish
            .json(&json!({"topic": "t", "type": "x", "data": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "/v1/publish with key {key:?}");
        let body: Value = r.json().await.unwrap();
        crate::support::error_code(&body);
    }
    let r = gw
        .http()
        .get(gw.http_url("/v1/status"))
        .header("X-Api-Key", API_KEY)
        .timeout(T)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    publish(&gw, "t", "x", json!({})).await;
}

/// Runs the gateway with `args` and extra environment, bounded to 10 s;
/// returns the exit code, stdout and stderr.
async fn run_gateway(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut builder = TestGateway::builder().bin(env!("CARGO_BIN_EXE_relay-gateway"));
    builder = builder
        .env("RELAY_LISTEN", "127.0.0.1:0")
        .env("RELAY_REDIS_URL", "redis://127.0.0.1:1");
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    let mut cmd = tokio::process::Command::from(builder.command());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(10), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("relay-gateway {args:?} {env:?} did not exit within 10 s"))
        .expect("run relay-gateway");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_every_gateway_variable_of_the_contract() {
    let (code, stdout, stderr) = run_gateway(&["--help"], &[]).await;
    assert_eq!(code, Some(0), "--help: {stderr}");
    // The contract's table (the worker-only variables excepted), plus the
    // limits these tests rely on.
    for var in [
        "RELAY_REDIS_URL",
        "RELAY_DATABASE_URL",
        "RELAY_LISTEN",
        "RELAY_METRICS_LISTEN",
        "RELAY_AUTH",
        "RELAY_JWT_SECRET",
        "RELAY_JWT_PUBLIC_KEY",
        "RELAY_API_KEYS",
        "RELAY_HISTORY_SIZE",
        "RELAY_HISTORY_TTL",
        "RELAY_SHUTDOWN_GRACE",
        "RELAY_LOG",
        "RELAY_LOG_FORMAT",
        "RELAY_MAX_FRAME_BYTES",
        "RELAY_MAX_SUBSCRIPTIONS",
        "RELAY_SEND_QUEUE",
        "RELAY_HEARTBEAT",
    ] {
        assert!(stdout.contains(var), "{var} missing from --help:\n{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_value_exits_64_with_one_line_naming_the_variable() {
    for (var, value) in [
        ("RELAY_HISTORY_SIZE", "abc"),
        ("RELAY_HISTORY_TTL", "forever"),
        ("RELAY_SHUTDOWN_GRACE", "-1s"),
        ("RELAY_AUTH", "maybe"),
        ("RELAY_REDIS_URL", "http://127.0.0.1:6379"),
        ("RELAY_LISTEN", "nowhere"),
        ("RELAY_LOG_FORMAT", "xml"),
        ("RELAY_SEND_QUEUE", "0"),
    ] {
        let (code, _, stderr) = run_gateway(&[], &[(var, value)]).await;
        assert_eq!(
            code,
            Some(64),
            "{var}={value}: exit {code:?}, stderr: {stderr}"
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{var}={value}: one line expected, got:\n{stderr}"
        );
        assert!(
            lines[0].contains(var),
            "{var}={value}: the message must name the variable: {}",
            lines[0]
        );
    }
}
