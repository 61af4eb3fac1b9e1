//! `docs/metrics.md` against what a gateway and a worker really expose.
//!
//! A gateway (with PostgreSQL, so the job API is on) and a worker run on a
//! test Redis; a little traffic of every sort goes through them (WebSocket
//! subscribe, publish and resume, long-poll, SSE, errors, jobs that complete,
//! retry, fail and are cancelled). Then every `relay_*` family on either
//! `/metrics` must be in the catalogue with the same type and only
//! catalogued label names, no label value may carry a topic, event id or job
//! id, and every catalogued metric must be named in the sources.
//!
//! [`Stack`] and [`drive`] are shared with `dashboards`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_testkit::{eventually, SseStream, TestPostgres, TestRedis, TestWorker, WsClient};
use serde_json::{json, Value};

use crate::support::{gateway, T};

/// A gateway and a worker on their own Redis and PostgreSQL.
pub(crate) struct Stack {
    pub(crate) gw: relay_testkit::TestGateway,
    pub(crate) worker: TestWorker,
    _redis: TestRedis,
    _pg: TestPostgres,
}

impl Stack {
    pub(crate) async fn start() -> Stack {
        let redis = TestRedis::start();
        let pg = TestPostgres::start();
        let gw = gateway(&redis).postgres(&pg).spawn().await;
        let worker = TestWorker::builder()
            .redis(&redis)
            .postgres(&pg)
            .env("RELAY_WORKER_CONCURRENCY", "4")
            .env("RELAY_JOB_LEASE", "2s")
            .spawn()
            .await;
        Stack {
            gw,
            worker,
            _redis: redis,
            _pg: pg,
        }
    }

    /// The gateway's and the worker's `/metrics`.
    pub(crate) async fn expositions(&self) -> (String, String) {
        let gw = self.gw.get("/metrics").await.text().await.expect("body");
        let worker = self
            .worker
            .http()
            .get(self.worker.http_url("/metrics"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("worker /metrics")
            .text()
            .await
            .expect("body");
        (gw, worker)
    }
}

/// What [`drive`] used, so label values can be checked against it.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    pub(crate) topics: Vec<String>,
    pub(crate) event_ids: Vec<String>,
    pub(crate) job_ids: Vec<String>,
}

/// A bounded bit of every kind of traffic: 2 WebSocket clients, 10 events,
/// a resume, a long-poll, an SSE stream, a few errors, and 5 jobs (2
/// completed, one of them after a retry; 1 failed; 2 cancelled, one queued
/// and one running). Returns when every job has ended.
pub(crate) async fn drive(stack: &Stack) -> Traffic {
    let gw = &stack.gw;
    let mut t = Traffic::default();
    let topic = format!("metrics-{}", std::process::id());
    let other = format!("{topic}-other");
    t.topics.extend([topic.clone(), other.clone()]);

    let (mut a, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (mut b, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    a.subscribe_ok(1, &topic, None, None).await;
    b.subscribe_ok(1, &topic, None, None).await;
    b.subscribe_ok(2, &other, None, None).await;
    let mut sse = SseStream::open(
        gw.http(),
        &gw.http_url(&format!("/v1/sse?topics={topic}")),
        None,
    )
    .await;
    assert_eq!(sse.status(), 200, "SSE refused");

    for i in 0..8u64 {
        let id = relay_testkit::publish(gw, &topic, "test.seq", json!({ "seq": i })).await;
        t.event_ids.push(id);
    }
    assert_eq!(a.recv_events(8, T).await.len(), 8);
    a.send_json(&json!({"op": "publish", "id": 9, "topic": other, "type": "test.ws", "data": {}}))
        .await;
    a.recv_until(T, |f| f["id"] == 9).await;
    assert_eq!(b.recv_events(9, T).await.len(), 9);
    assert_eq!(sse.next_events(8, T).await.len(), 8);

    // A resume with `since` (replay and recovery), then a long-poll.
    let (mut c, _) = WsClient::connect_welcomed(&gw.ws_url("/v1/ws")).await;
    let (reply, before) = c.subscribe_ok(1, &topic, Some(&t.event_ids[3]), None).await;
    let mut replayed = before;
    replayed.extend(
        c.recv_events(4usize.saturating_sub(replayed.len()), T)
            .await,
    );
    assert!(
        replayed.len() >= 4,
        "resume replayed {replayed:?} ({reply})"
    );
    let (status, body) = relay_testkit::poll(
        gw,
        &[
            ("topics", &topic),
            ("since", &t.event_ids[5]),
            ("wait", "1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "poll: {body}");
    let id = relay_testkit::publish(gw, &topic, "test.seq", json!({ "seq": 8 })).await;
    t.event_ids.push(id.clone());
    let (status, body) = relay_testkit::poll(
        gw,
        &[
            ("topics", &topic),
            ("since", &t.event_ids[7]),
            ("wait", "5"),
        ],
    )
    .await;
    assert_eq!(status, 200, "poll: {body}");

    // Errors: a bad frame, an unknown endpoint.
    a.send_text("{not json").await;
    a.recv_until(T, |f| f["op"] == "error").await;
    assert_eq!(gw.status_of("/v1/no-such-thing").await, Some(404));
    c.close().await;

    // Jobs of every outcome.
    let done = submit(
        gw,
        json!({"kind": "sleep", "payload": {"ms": 20, "steps": 1}}),
    )
    .await;
    let retried = submit(
        gw,
        json!({"kind": "sleep", "payload": {"ms": 20, "steps": 1, "fail_attempts": 1}, "max_attempts": 2}),
    )
    .await;
    let failed = submit(
        gw,
        json!({"kind": "sleep", "payload": {"ms": 10, "steps": 1, "fail_attempts": 1}, "max_attempts": 1}),
    )
    .await;
    let queued = submit(
        gw,
        json!({"kind": "sleep", "payload": {"ms": 10, "steps": 1}, "delay_ms": 600000}),
    )
    .await;
    let running = submit(
        gw,
        json!({"kind": "sleep", "payload": {"ms": 30000, "steps": 30}}),
    )
    .await;
    t.job_ids
        .extend([&done, &retried, &failed, &queued, &running].map(|s| s.to_string()));
    eventually!(
        Duration::from_secs(20),
        job_state(gw, &running).await == "running"
    );
    cancel(gw, &queued).await;
    cancel(gw, &running).await;
    for (id, want) in [
        (&done, "completed"),
        (&retried, "completed"),
        (&failed, "failed"),
        (&queued, "cancelled"),
        (&running, "cancelled"),
    ] {
        eventually!(
            Duration::from_secs(30),
            job_state(gw, id).await == want,
            "job {id} should end {want}"
        );
    }
    drop(a);
    drop(b);
    t
}

async fn submit(gw: &relay_testkit::TestGateway, body: Value) -> String {
    let r = gw
        .http()
        .post(gw.http_url("/v1/jobs"))
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("POST /v1/jobs");
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("json");
    assert_eq!(status, 202, "submit {body}: {v}");
    v["id"].as_str().expect("job id").to_string()
}

async fn cancel(gw: &relay_testkit::TestGateway, id: &str) {
    let r = gw
        .http()
        .post(gw.http_url(&format!("/v1/jobs/{id}/cancel")))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("cancel");
    assert_eq!(r.status().as_u16(), 202, "cancel {id}");
}

async fn job_state(gw: &relay_testkit::TestGateway, id: &str) -> String {
    let v: Value = gw
        .get(&format!("/v1/jobs/{id}"))
        .await
        .json()
        .await
        .expect("job json");
    v["state"].as_str().unwrap_or_default().to_string()
}

/// One catalogue row.
#[derive(Debug, Clone)]
pub(crate) struct Documented {
    pub(crate) kind: String,
    pub(crate) labels: BTreeSet<String>,
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The rows of `docs/metrics.md`: `` | `name` | type | `label` (...), ... | meaning | ``.
pub(crate) fn catalogue() -> BTreeMap<String, Documented> {
    let text =
        std::fs::read_to_string(workspace_root().join("docs/metrics.md")).expect("docs/metrics.md");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 || !cells[1].starts_with("`relay_") {
            continue;
        }
        let name = cells[1].trim_matches('`').to_string();
        // Label names are the backticked words outside parentheses.
        let mut labels = BTreeSet::new();
        let mut depth = 0;
        let mut in_tick = false;
        let mut word = String::new();
        for ch in cells[3].chars() {
            match ch {
                '(' if !in_tick => depth += 1,
                ')' if !in_tick => depth -= 1,
                '`' => {
                    if in_tick && depth == 0 {
                        labels.insert(std::mem::take(&mut word));
                    }
                    word.clear();
                    in_tick = !in_tick;
                }
                c if in_tick => word.push(c),
                _ => {}
            }
        }
        let prev = out.insert(
            name.clone(),
            Documented {
                kind: cells[2].to_string(),
                labels,
            },
        );
        assert!(prev.is_none(), "{name} is catalogued twice");
    }
    out
}

/// A metric family as exposed: its type and every sample's labels.
#[derive(Debug, Default)]
pub(crate) struct Family {
    pub(crate) kind: String,
    pub(crate) samples: Vec<BTreeMap<String, String>>,
}

/// Parses Prometheus text: `# TYPE` lines and samples (by family name).
pub(crate) fn parse_exposition(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            out.entry(name.to_string()).or_default().kind = kind.to_string();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let sample = &line[..name_end];
        let family = if out.contains_key(sample) {
            sample.to_string()
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| sample.strip_suffix(s).filter(|f| out.contains_key(*f)))
                .unwrap_or(sample)
                .to_string()
        };
        let mut labels = BTreeMap::new();
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.rfind('}').expect("closing brace")];
            for pair in split_labels(body) {
                let (k, v) = pair.split_once('=').expect("label pair");
                labels.insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
        labels.remove("le");
        labels.remove("quantile");
        out.entry(family).or_default().samples.push(labels);
    }
    out
}

/// Splits `a="x",b="y,z"` at the commas between pairs.
fn split_labels(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for ch in body.chars() {
        match ch {
            _ if escaped => {
                escaped = false;
                cur.push(ch);
            }
            '\\' => {
                escaped = true;
                cur.push(ch);
            }
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Every `.rs` file's text under `dir`.
fn sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
}

/// Families the traffic of [`drive`] must make visible (each counter is
/// only exposed once touched).
const MUST_APPEAR: &[&str] = &[
    "relay_build_info",
    "relay_gateway_connections",
    "relay_gateway_subscriptions",
    "relay_gateway_subscribes_total",
    "relay_gateway_topics",
    "relay_gateway_events_published_total",
    "relay_gateway_pubsub_messages_total",
    "relay_gateway_events_delivered_total",
    "relay_gateway_replayed_events_total",
    "relay_gateway_recovery_total",
    "relay_gateway_history_reads_total",
    "relay_gateway_publish_to_send_seconds",
    "relay_gateway_ws_errors_total",
    "relay_gateway_http_errors_total",
    "relay_gateway_closes_total",
    "relay_gateway_sse_streams",
    "relay_gateway_poll_requests_in_flight",
    "relay_gateway_ready",
    "relay_gateway_dependency_up",
    "relay_gateway_http_request_duration_seconds",
    "relay_jobs_submitted_total",
    "relay_jobs_started_total",
    "relay_jobs_completed_total",
    "relay_jobs_failed_total",
    "relay_jobs_retried_total",
    "relay_jobs_cancelled_total",
    "relay_job_wait_seconds",
    "relay_job_run_seconds",
    "relay_queue_depth",
    "relay_worker_running_jobs",
    "relay_worker_concurrency",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exposed_metric_is_catalogued_with_bounded_labels() {
    let stack = Stack::start().await;
    let traffic = drive(&stack).await;
    // /readyz sets the readiness gauges (the reporter does so every 5 s).
    assert_eq!(stack.gw.status_of("/readyz").await, Some(200));
    let docs = catalogue();
    assert!(docs.len() >= 30, "catalogue parsed only {docs:?}");

    // The worker reports queue depth (dead letters too) on its heartbeat.
    let mut exposed: BTreeMap<String, Family>;
    eventually!(
        Duration::from_secs(20),
        {
            let (gw, worker) = stack.expositions().await;
            exposed = parse_exposition(&gw);
            for (name, fam) in parse_exposition(&worker) {
                let e = exposed.entry(name).or_default();
                assert!(
                    e.kind.is_empty() || e.kind == fam.kind,
                    "gateway and worker disagree on a type"
                );
                e.kind = fam.kind;
                e.samples.extend(fam.samples);
            }
            let dead = exposed.get("relay_queue_depth").is_some_and(|f| {
                f.samples
                    .iter()
                    .any(|l| l.get("state").map(String::as_str) == Some("dead"))
            });
            dead && MUST_APPEAR.iter().all(|m| exposed.contains_key(*m))
        },
        "missing: {:?}",
        MUST_APPEAR
            .iter()
            .filter(|m| !exposed.contains_key(**m))
            .collect::<Vec<_>>()
    );

    let mut problems = BTreeSet::new();
    let forbidden: Vec<&String> = traffic
        .topics
        .iter()
        .chain(&traffic.event_ids)
        .chain(&traffic.job_ids)
        .collect();
    for (name, fam) in exposed.iter().filter(|(n, _)| n.starts_with("relay_")) {
        let Some(doc) = docs.get(name) else {
            problems.insert(format!("{name} ({}) is not in docs/metrics.md", fam.kind));
            continue;
        };
        if doc.kind != fam.kind {
            problems.insert(format!(
                "{name} is a {} but docs/metrics.md says {}",
                fam.kind, doc.kind
            ));
        }
        for labels in &fam.samples {
            for (k, v) in labels {
                if !doc.labels.contains(k) {
                    problems.insert(format!("{name} has label {k}={v:?}, not catalogued"));
                }
                if v.len() > 64 || forbidden.iter().any(|f| v.contains(f.as_str())) {
                    problems.insert(format!("{name}{{{k}={v:?}}}: an unbounded label value"));
                }
            }
        }
    }
    // HTTP routes are templates, never paths with ids.
    if let Some(fam) = exposed.get("relay_gateway_http_request_duration_seconds") {
        let routes: BTreeSet<&str> = fam
            .samples
            .iter()
            .filter_map(|l| l.get("route").map(String::as_str))
            .collect();
        for want in [
            "/v1/jobs",
            "/v1/jobs/{id}",
            "/v1/jobs/{id}/cancel",
            "unmatched",
        ] {
            if !routes.contains(want) {
                problems.insert(format!("no HTTP duration for route {want}: {routes:?}"));
            }
        }
    }

    let mut src = String::new();
    for dir in ["gateway/src", "worker/src", "shared/src"] {
        sources(&workspace_root().join(dir), &mut src);
    }
    for name in docs.keys() {
        if !src.contains(&format!("\"{name}\"")) && !exposed.contains_key(name) {
            problems.insert(format!(
                "{name} is catalogued but neither exposed nor named in the sources"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "metrics catalogue drift:\n{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_exposition_parser_reads_types_labels_and_histograms() {
    let text = "# HELP a_total x\n# TYPE a_total counter\na_total{code=\"X\",r=\"a,b\"} 3\n\
                # TYPE h_seconds histogram\nh_seconds_bucket{le=\"0.1\"} 1\nh_seconds_sum 0.2\nh_seconds_count 1\n";
    let f = parse_exposition(text);
    assert_eq!(f["a_total"].kind, "counter");
    assert_eq!(f["a_total"].samples[0]["r"], "a,b");
    assert_eq!(f["h_seconds"].kind, "histogram");
    assert_eq!(f["h_seconds"].samples.len(), 3);
    assert!(
        f["h_seconds"].samples[0].is_empty(),
        "le is not a label of the family"
    );
    let docs = catalogue();
    let q = &docs["relay_queue_depth"];
    assert_eq!(q.kind, "gauge");
    assert_eq!(
        q.labels,
        ["kind", "state"].map(String::from).into_iter().collect()
    );
}
