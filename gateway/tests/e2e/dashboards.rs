//! The Grafana dashboards and Prometheus alert rules against a real
//! Prometheus (Debian's `prometheus` and `promtool`).
//!
//! - `dashboards_are_valid_grafana_json`: both dashboards parse, have a uid,
//!   schemaVersion 39, the `instance` (and `kind`) variables, panels with
//!   gridPos and targets, and use the provisioned datasource uid.
//! - `alert_rules_pass_promtool`: `promtool check rules`, `promtool test
//!   rules` (deploy/prometheus/relay-rules.test.yml) and `promtool check
//!   config` of the example scrape configuration.
//! - `every_panel_query_runs_on_real_prometheus`: Prometheus scrapes a real
//!   gateway and worker every second (and loads the alert rules); a bounded
//!   load runs (see `metrics_catalogue::drive`); then every panel
//!   expression of both dashboards is evaluated through `/api/v1/query`.
//!   Any query error fails, and so does an empty result for a panel in
//!   [`LIT_GATEWAYS`] / [`LIT_JOBS`] (the panels this load must light up).
//!   Panels left out need events the load does not cause (slow consumers,
//!   limits, pub/sub lag, lease reclaims, sweeps, dropped job events).
//!
//! Without the tools these tests print why and pass, except under `CI=true`,
//! where they fail (`.ci/run` installs `prometheus`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use relay_testkit::{eventually, free_port};
use serde_json::Value;

use crate::metrics_catalogue::{drive, workspace_root, Stack};

/// Panels of "Relay gateways" that the load must light up (non-empty).
const LIT_GATEWAYS: &[&str] = &[
    "Gateways up",
    "Gateways ready",
    "Open WebSocket connections",
    "Subscriptions",
    "Connections by instance",
    "Subscriptions and topics by instance",
    "Subscribe rate",
    "Deliveries per second by transport",
    "Publishes per second by route",
    "Publish-to-send latency",
    "WebSocket closes by reason",
    "Replayed events by transport",
    "Resume outcomes",
    "Long-poll and SSE clients",
    "Errors by code",
    "HTTP p99 by route",
    "HTTP requests per second by status",
    "Dependencies up by instance",
    "Deliveries per second by instance",
];

/// Panels of "Relay jobs" that the load must light up (non-empty).
const LIT_JOBS: &[&str] = &[
    "Workers up",
    "Concurrency in use",
    "Waiting jobs",
    "Dead letters",
    "Submitted per second by kind",
    "Completed per second by kind",
    "Failed per second by kind",
    "Retried per second by kind",
    "Cancelled per second by kind",
    "Started per second by kind",
    "Queue depth by state",
    "Waiting jobs growth (per minute)",
    "Wait time (submit to start)",
    "Run time",
    "Dead letters by kind",
    "Running jobs and concurrency by worker",
];

/// The path of `tool` on `PATH`, or `None` (a failure under `CI=true`).
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "{name} is not installed (apt-get install prometheus); .ci/run installs it"
        );
        eprintln!("skipping: {name} is not installed (apt-get install prometheus)");
    }
    found
}

fn dashboard(file: &str) -> Value {
    let path = workspace_root().join("grafana/dashboards").join(file);
    let text = std::fs::read_to_string(&path).expect("dashboard file");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `(panel title, expressions)` of a dashboard.
fn panels(d: &Value) -> Vec<(String, Vec<String>)> {
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| {
            let exprs = p["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .map(|t| t["expr"].as_str().expect("expr").to_string())
                .collect();
            (p["title"].as_str().expect("title").to_string(), exprs)
        })
        .collect()
}

#[test]
fn dashboards_are_valid_grafana_json() {
    let provisioning = std::fs::read_to_string(
        workspace_root().join("grafana/provisioning/datasources/prometheus.yml"),
    )
    .expect("datasource provisioning");
    assert!(
        provisioning.contains("uid: relay-prometheus"),
        "datasource uid"
    );
    for (file, uid, vars) in [
        ("relay-gateways.json", "relay-gateways", &["instance"][..]),
        ("relay-jobs.json", "relay-jobs", &["instance", "kind"][..]),
    ] {
        let d = dashboard(file);
        assert_eq!(d["uid"], uid, "{file} uid");
        assert_eq!(d["schemaVersion"], 39, "{file} schemaVersion");
        let names: BTreeSet<&str> = d["templating"]["list"]
            .as_array()
            .expect("templating")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for v in vars {
            assert!(names.contains(v), "{file} lacks the {v} variable");
        }
        let mut ids = BTreeSet::new();
        for p in d["panels"].as_array().expect("panels") {
            let title = p["title"].as_str().unwrap_or("?");
            assert!(
                ids.insert(p["id"].as_u64().expect("id")),
                "{file}: duplicate id"
            );
            for k in ["x", "y", "w", "h"] {
                assert!(p["gridPos"][k].is_u64(), "{file}/{title}: gridPos.{k}");
            }
            assert!(
                p["gridPos"]["x"].as_u64().unwrap() + p["gridPos"]["w"].as_u64().unwrap() <= 24
            );
            assert_eq!(p["datasource"]["uid"], "relay-prometheus", "{file}/{title}");
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{file}/{title}: no target");
            for t in targets {
                assert_eq!(t["datasource"]["uid"], "relay-prometheus", "{file}/{title}");
                assert!(t["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("relay_") || e.contains("up{")));
            }
        }
        let titles: BTreeSet<String> = panels(&d).into_iter().map(|(t, _)| t).collect();
        let lit = if uid == "relay-jobs" {
            LIT_JOBS
        } else {
            LIT_GATEWAYS
        };
        for t in lit {
            assert!(titles.contains(*t), "{file} has no panel {t:?}");
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = workspace_root().join("deploy/prometheus");
    let out =
        run(Command::new(&promtool)
            .current_dir(&dir)
            .args(["check", "rules", "relay-rules.yml"]));
    assert!(out.contains("SUCCESS"), "{out}");
    run(Command::new(&promtool)
        .current_dir(&dir)
        .args(["test", "rules", "relay-rules.test.yml"]));
    run(Command::new(&promtool)
        .current_dir(&dir)
        .args(["check", "config", "prometheus.yml"]));
}

/// A `prometheus` process and its directory, removed when dropped.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    port: u16,
    http: reqwest::Client,
}

impl Prometheus {
    fn start(bin: &Path, targets: &[(&str, String)]) -> Prometheus {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("relay-prom-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let rules = workspace_root().join("deploy/prometheus/relay-rules.yml");
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\nscrape_configs:\n",
            rules.display()
        );
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ));
        }
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        Prometheus {
            child,
            dir,
            port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        match self.http.get(&url).query(params).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// The result vector of an instant query, or the error Prometheus gave.
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let v = self.api("/api/v1/query", &[("query", expr)]).await;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    async fn count(&self, expr: &str) -> usize {
        self.query(expr).await.map(|r| r.len()).unwrap_or(0)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- prometheus log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A panel expression with Grafana's variables replaced for an instant query.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$instance", ".*")
        .replace("$kind", ".*")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_runs_on_real_prometheus() {
    let Some(bin) = tool("prometheus") else {
        return;
    };
    let stack = Stack::start().await;
    let prom = Prometheus::start(
        &bin,
        &[
            ("relay-gateway", stack.gw.addr().to_string()),
            ("relay-worker", stack.worker.metrics_addr().to_string()),
        ],
    );
    eventually!(
        Duration::from_secs(30),
        prom.count(r#"up{job=~"relay-gateway|relay-worker"} == 1"#)
            .await
            == 2,
        "prometheus is not scraping both targets: {}",
        prom.log()
    );

    drive(&stack).await;

    // Everything the load caused has been scraped: the last job outcomes and
    // the dead letter (the worker reports queue depth every 5 s).
    for expr in [
        r#"relay_jobs_cancelled_total{job="relay-worker"}"#,
        r#"relay_jobs_failed_total"#,
        r#"relay_queue_depth{state="dead"} >= 1"#,
        r#"relay_jobs_completed_total >= 2"#,
        // Rates need two scrapes of a series inside the panels' window.
        r#"rate(relay_gateway_subscribes_total[1m])"#,
        r#"rate(relay_gateway_events_delivered_total[1m])"#,
        r#"rate(relay_gateway_events_published_total[1m])"#,
        r#"rate(relay_gateway_pubsub_messages_total[1m])"#,
        r#"rate(relay_gateway_publish_to_send_seconds_count[1m])"#,
        r#"rate(relay_gateway_closes_total[1m])"#,
    ] {
        eventually!(
            Duration::from_secs(30),
            prom.count(expr).await > 0,
            "never scraped: {expr}"
        );
    }

    // The alert rules loaded and evaluate without error.
    let rules = prom.api("/api/v1/rules", &[]).await;
    let loaded: Vec<Value> = rules["data"]["groups"]
        .as_array()
        .expect("rule groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(loaded.len() >= 10, "rules not loaded: {rules}");
    for r in &loaded {
        assert_ne!(
            r["health"], "err",
            "rule {} fails: {}",
            r["name"], r["lastError"]
        );
    }

    let mut problems = Vec::new();
    let mut dark = Vec::new();
    for (file, lit) in [
        ("relay-gateways.json", LIT_GATEWAYS),
        ("relay-jobs.json", LIT_JOBS),
    ] {
        for (title, exprs) in panels(&dashboard(file)) {
            let must = lit.contains(&title.as_str());
            let mut any = false;
            for expr in exprs {
                let q = substitute(&expr);
                match prom.query(&q).await {
                    Err(e) => problems.push(format!("{file} / {title}: {q}: {e}")),
                    Ok(r) if r.is_empty() && must => {
                        problems.push(format!("{file} / {title}: empty: {q}"))
                    }
                    Ok(r) => any |= !r.is_empty(),
                }
            }
            if !must {
                dark.push(format!(
                    "{title} ({})",
                    if any { "has data" } else { "empty" }
                ));
            }
        }
    }
    eprintln!("panels the load need not light up: {dark:?}");
    assert!(
        problems.is_empty(),
        "dashboard queries:\n{}",
        problems.join("\n")
    );
}
