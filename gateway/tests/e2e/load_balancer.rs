//! A real nginx in front of two gateways, configured with the repository's
//! own `deploy/nginx/relay.conf` (its upstream and `listen` lines rewritten
//! to loopback ports): WebSocket, SSE and long-poll through the load
//! balancer, and a client that resumes through it after its gateway is
//! killed, with no event lost or duplicated.
//!
//! Needs Debian's `nginx` (installed by `.ci/run`); outside CI the tests
//! are skipped with a message when it is missing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use relay_testkit::{eventually, free_port, SseStream, TestGateway, TestRedis, WsClient, API_KEY};
use serde_json::{json, Value};

use crate::support::{assert_seqs, gateway, id_of, metric_sum, only_events, QUIET, T};

/// The repository's nginx configuration.
fn relay_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/relay.conf")
}

/// Finds `name` on the PATH or in the sbin folders (nginx lives in /usr/sbin).
pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The tool, or `None` (with a message) when it is missing outside CI;
/// panics when it is missing in CI (`CI=true`), where `.ci/run` installs it.
pub(crate) fn require_tool(name: &str, package: &str) -> Option<PathBuf> {
    if let Some(p) = find_tool(name) {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{name} is missing in CI: .ci/run must install the Debian package {package}");
    }
    eprintln!("SKIPPED: {name} not found (apt-get install {package}); this test did not run");
    None
}

/// Renders `relay.conf` for gateways on `upstreams`, listening on `port`.
pub(crate) fn render_relay_conf(upstreams: &[SocketAddr], port: u16) -> String {
    let conf = std::fs::read_to_string(relay_conf()).expect("read deploy/nginx/relay.conf");
    let begin = conf
        .find("# BEGIN gateways")
        .expect("relay.conf has no `# BEGIN gateways` marker");
    let end = conf
        .find("# END gateways")
        .expect("relay.conf has no `# END gateways` marker");
    let servers: String = upstreams
        .iter()
        .map(|a| format!("server {a} max_fails=1 fail_timeout=10s;\n    "))
        .collect();
    let conf = format!("{}{servers}{}", &conf[..begin], &conf[end..]);
    let listen = "listen 8080; # relay-listen";
    assert!(conf.contains(listen), "relay.conf has no `{listen}` line");
    conf.replace(listen, &format!("listen 127.0.0.1:{port};"))
}

/// A real nginx child process with everything (pid, logs, temp files) in a
/// temporary folder. Stopped (SIGTERM, then SIGKILL) when dropped; its error
/// log is printed when the test fails.
pub(crate) struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Nginx {
    /// Starts nginx in front of `upstreams` and waits until it proxies
    /// `GET /healthz`; `None` when nginx is not installed (outside CI).
    pub(crate) async fn start(upstreams: &[SocketAddr]) -> Option<Nginx> {
        let bin = require_tool("nginx", "nginx")?;
        // Another process may take the port between `free_port` and the bind.
        for _ in 0..5 {
            let port = free_port();
            let dir = tempfile::Builder::new()
                .prefix("relay-nginx-")
                .tempdir()
                .expect("temp dir");
            let d = dir.path().display();
            std::fs::write(
                dir.path().join("relay.conf"),
                render_relay_conf(upstreams, port),
            )
            .unwrap();
            let main = format!(
                "# Written by gateway/tests/e2e/load_balancer.rs\n\
                 user root;\n\
                 worker_processes 1;\n\
                 pid {d}/nginx.pid;\n\
                 error_log {d}/error.log info;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n\
                 access_log {d}/access.log;\n\
                 client_body_temp_path {d}/client_body;\n\
                 proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n\
                 uwsgi_temp_path {d}/uwsgi;\n\
                 scgi_temp_path {d}/scgi;\n\
                 include {d}/relay.conf;\n\
                 }}\n"
            );
            std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
            let child = Command::new(&bin)
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-g")
                .arg("daemon off;")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
                .spawn()
                .expect("spawn nginx");
            let mut nginx = Nginx { child, dir, port };
            if nginx.wait_proxying().await {
                return Some(nginx);
            }
            if !nginx.log().contains("Address already in use") {
                panic!("nginx did not start; log:\n{}", nginx.log());
            }
        }
        panic!("nginx did not find a free port in 5 tries");
    }

    /// Waits (10 s at most) until `GET /healthz` through nginx answers 200;
    /// false when nginx exited first.
    async fn wait_proxying(&mut self) -> bool {
        let http = reqwest::Client::new();
        let url = self.http_url("/healthz");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let r = http.get(&url).timeout(Duration::from_secs(1)).send().await;
            if r.is_ok_and(|r| r.status() == 200) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "nginx did not proxy {url} within 10 s; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// nginx's stderr and error log.
    pub(crate) fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- nginx log -----\n{}\n----- end of nginx log -----",
                self.log()
            );
        }
        // SIGTERM lets the master stop its workers; SIGKILL if that takes long.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..250 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes `{"seq": i}` for each `i` through nginx; every publish must succeed.
async fn publish_via(
    http: &reqwest::Client,
    nginx: &Nginx,
    topic: &str,
    seqs: std::ops::Range<u64>,
) {
    for i in seqs {
        let r = http
            .post(nginx.http_url("/v1/publish"))
            .header("X-Api-Key", API_KEY)
            .json(&json!({"topic": topic, "type": "test.seq", "data": {"seq": i}}))
            .timeout(T)
            .send()
            .await
            .unwrap_or_else(|e| panic!("publish {i} through nginx: {e}"));
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(
            status, 200,
            "publish {i} through nginx answered {status}: {body}"
        );
    }
}

/// WebSocket connections open on this gateway, from its own metrics.
async fn connections(gw: &TestGateway) -> f64 {
    let text = gw.get("/metrics").await.text().await.unwrap_or_default();
    metric_sum(&text, |n| n == "relay_gateway_connections").unwrap_or(0.0)
}

/// The index of the one gateway holding one connection, if exactly one does.
async fn holder_of(gws: &[TestGateway]) -> Option<usize> {
    match (
        connections(&gws[0]).await as u64,
        connections(&gws[1]).await as u64,
    ) {
        (1, 0) => Some(0),
        (0, 1) => Some(1),
        _ => None,
    }
}

fn lb_gateway(redis: &TestRedis) -> relay_testkit::GatewayBuilder {
    // nginx connects from 127.0.0.1: trust its X-Forwarded-For.
    gateway(redis).env("RELAY_TRUSTED_PROXIES", "127.0.0.1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_resumes_through_nginx_after_its_gateway_is_killed() {
    let redis = TestRedis::start();
    let mut gws = vec![
        lb_gateway(&redis).spawn().await,
        lb_gateway(&redis).spawn().await,
    ];
    let addrs: Vec<SocketAddr> = gws.iter().map(TestGateway::addr).collect();
    let Some(nginx) = Nginx::start(&addrs).await else {
        return;
    };
    let http = reqwest::Client::new();
    let topic = "lb:ws";

    let (mut c, _) = WsClient::connect_welcomed(&nginx.ws_url("/v1/ws")).await;
    let (reply, _) = c.subscribe_ok(1, topic, None, None).await;
    let epoch = reply["epoch"].as_str().expect("epoch").to_string();
    publish_via(&http, &nginx, topic, 0..5).await;
    let first = c.recv_events(5, T).await;
    assert_seqs(&first, topic, 0..5);
    let last_id = id_of(&first[4]).to_string();

    // Which gateway holds the connection: the one counting it.
    eventually!(T, holder_of(&gws).await.is_some());
    let holder = holder_of(&gws).await.unwrap();
    let survivor = 1 - holder;
    gws[holder].kill();

    // nginx ends the client's connection when its upstream dies.
    eventually!(T, c.next_json_or_end(T).await.is_none());

    // Published meanwhile, through nginx, which skips the dead gateway.
    publish_via(&http, &nginx, topic, 5..15).await;

    let (mut c, _) = WsClient::connect_welcomed(&nginx.ws_url("/v1/ws")).await;
    let (reply, before) = c.subscribe_ok(2, topic, Some(&last_id), Some(&epoch)).await;
    assert_eq!(reply["recovered"], true, "resume not recovered: {reply}");
    assert_eq!(reply["epoch"], epoch.as_str(), "epoch changed: {reply}");
    let mut events = only_events(before);
    if events.len() < 10 {
        events.extend(c.recv_events(10 - events.len(), T).await);
    }
    publish_via(&http, &nginx, topic, 15..20).await;
    events.extend(c.recv_events(5, T).await);
    assert_seqs(&events, topic, 5..20);
    c.assert_silent(QUIET).await;
    assert_eq!(
        connections(&gws[survivor]).await,
        1.0,
        "the client is not on the surviving gateway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_and_long_poll_work_through_nginx() {
    let redis = TestRedis::start();
    let gws = [
        lb_gateway(&redis).spawn().await,
        lb_gateway(&redis).spawn().await,
    ];
    let addrs: Vec<SocketAddr> = gws.iter().map(TestGateway::addr).collect();
    let Some(nginx) = Nginx::start(&addrs).await else {
        return;
    };
    let http = reqwest::Client::new();

    // SSE: events stream through unbuffered, each as soon as it is published.
    let mut sse = SseStream::open(&http, &nginx.http_url("/v1/sse?topics=lb:sse"), None).await;
    assert_eq!(sse.status(), 200);
    assert!(
        sse.content_type().starts_with("text/event-stream"),
        "{}",
        sse.content_type()
    );
    for i in 0..3 {
        publish_via(&http, &nginx, "lb:sse", i..i + 1).await;
        let e = sse.next_event(T).await;
        assert_eq!(e.json()["data"]["seq"], i, "SSE event {i}: {e:?}");
        assert!(e.id.is_some(), "SSE event without an id (cursor): {e:?}");
    }
    sse.assert_silent(QUIET).await;

    // Long-poll: a waiting poll is held open through nginx and answered
    // when an event arrives; the next poll (on any gateway) goes on from its cursor.
    let poll = |params: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = reqwest::Url::parse_with_params(&nginx.http_url("/v1/poll"), &params).unwrap();
        async move {
            let r = http
                .get(url)
                .timeout(Duration::from_secs(45))
                .send()
                .await
                .expect("poll");
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("poll answer is JSON")
        }
    };
    let start = poll(vec![("topics", "lb:poll".into()), ("wait", "0".into())]).await;
    let cursor = start["cursor"].as_str().expect("cursor").to_string();
    let waiting = tokio::spawn(poll(vec![
        ("topics", "lb:poll".into()),
        ("cursor", cursor),
        ("wait", "25".into()),
    ]));
    publish_via(&http, &nginx, "lb:poll", 0..1).await;
    let answer = tokio::time::timeout(T, waiting)
        .await
        .expect("poll not answered")
        .unwrap();
    let events = answer["events"].as_array().expect("events").clone();
    assert_seqs(&events, "lb:poll", 0..1);
    let cursor = answer["cursor"].as_str().expect("cursor").to_string();
    publish_via(&http, &nginx, "lb:poll", 1..3).await;
    let mut seen = Vec::new();
    let mut cursor = cursor;
    // Two polls in a row, round-robin across both gateways.
    for _ in 0..2 {
        let a = poll(vec![
            ("topics", "lb:poll".into()),
            ("cursor", cursor.clone()),
            ("wait", "0".into()),
        ])
        .await;
        seen.extend(a["events"].as_array().expect("events").clone());
        cursor = a["cursor"].as_str().expect("cursor").to_string();
    }
    assert_seqs(&seen, "lb:poll", 1..3);
}

#[test]
fn relay_conf_has_what_long_lived_connections_need() {
    let conf = std::fs::read_to_string(relay_conf()).unwrap();
    let directives: Vec<String> = conf
        .lines()
        .map(|l| l.split('#').next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let has = |d: &str| directives.iter().any(|l| l == d);
    for d in [
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $relay_connection_upgrade;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_buffering off;",
        "proxy_request_buffering off;",
    ] {
        assert!(has(d), "relay.conf lacks `{d}`");
    }
    for d in ["proxy_read_timeout", "proxy_send_timeout"] {
        let secs: u64 = directives
            .iter()
            .find_map(|l| l.strip_prefix(d))
            .and_then(|v| {
                v.trim()
                    .trim_end_matches(';')
                    .trim_end_matches('s')
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("relay.conf has no {d} in seconds"));
        assert!(secs >= 3600, "{d} {secs}s is shorter than an hour");
    }
    let servers: Vec<&String> = directives
        .iter()
        .filter(|l| l.starts_with("server ") && !l.ends_with('{'))
        .collect();
    assert!(servers.len() >= 2, "{servers:?}");
    for s in servers {
        assert!(
            s.contains("max_fails=") && s.contains("fail_timeout="),
            "no passive health: {s}"
        );
    }
}
