//! Hostile input over HTTP: schemathesis generates requests from the
//! gateway's own `/openapi.json` (valid, edge-case and invalid ones) and
//! checks that no answer is a 5xx and that answers match their documented
//! schema.
//!
//! The tool is a pinned PyPI package in a venv under `target/` (installed by
//! `.ci/run`, or here when missing). Outside CI a failed install skips the
//! test with a printed reason; in CI (`CI=true`) it fails.
//!
//! Streaming endpoints (`/v1/ws`, `/v1/sse`) are left out, and long-poll
//! waits are pinned to `wait=0`, so the run is bounded: few examples per
//! operation, a per-request timeout, and a hard timeout on the process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use relay_testkit::{eventually, TestPostgres, TestRedis};

use crate::support::gateway;

/// The version `.ci/run` installs too.
const VERSION: &str = "4.32.5";
/// The whole schemathesis run, at most.
const HARD_TIMEOUT: Duration = Duration::from_secs(90);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

/// Runs a command to completion within `limit`; whether it succeeded, and its output.
fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String) {
    let started = Instant::now();
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot start {cmd:?}: {e}")),
    };
    // Drain the pipes on threads so a chatty child never blocks.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = format!(
        "{}\n{}",
        out_t.join().unwrap_or_default(),
        err_t.join().unwrap_or_default()
    );
    match status {
        Some(s) => (s.success(), text),
        None => (false, format!("timed out after {limit:?}\n{text}")),
    }
}

/// The schemathesis executable, installed into the venv when missing;
/// `Err` with the reason when it cannot be had.
fn schemathesis() -> Result<PathBuf, String> {
    let venv = target_dir().join("schemathesis-venv");
    let exe = venv.join("bin/schemathesis");
    // Starting Python only to ask the version is slow on a busy machine: look
    // for the package's metadata instead.
    let installed = |exe: &Path| {
        exe.exists()
            && std::fs::read_dir(venv.join("lib")).is_ok_and(|dirs| {
                dirs.flatten().any(|d| {
                    d.path()
                        .join(format!("site-packages/schemathesis-{VERSION}.dist-info"))
                        .is_dir()
                })
            })
    };
    if installed(&exe) {
        return Ok(exe);
    }
    if !venv.join("bin/pip").exists() {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "venv"]).arg(&venv);
        let (ok, out) = run_bounded(cmd, Duration::from_secs(120));
        if !ok {
            return Err(format!("python3 -m venv failed: {out}"));
        }
    }
    let mut cmd = Command::new(venv.join("bin/pip"));
    cmd.args(["install", "-q", &format!("schemathesis=={VERSION}")]);
    let (ok, out) = run_bounded(cmd, Duration::from_secs(600));
    if !ok || !installed(&exe) {
        return Err(format!("pip install schemathesis=={VERSION} failed: {out}"));
    }
    Ok(exe)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let exe = match tokio::task::spawn_blocking(schemathesis).await.unwrap() {
        Ok(exe) => exe,
        Err(reason) if !in_ci() => {
            eprintln!("skipped: schemathesis is not available: {reason}");
            return;
        }
        Err(reason) => panic!("schemathesis is required in CI: {reason}"),
    };

    let pg = TestPostgres::start();
    let redis = TestRedis::start();
    let gw = gateway(&redis)
        .postgres(&pg)
        .env("RELAY_AUTH", "off")
        // Schemathesis is one fast client: keep the HTTP rate limit out of its way.
        .env("RELAY_HTTP_RATE", "100000")
        .env("RELAY_LOG", "warn")
        .spawn()
        .await;
    eventually!(
        Duration::from_secs(30),
        gw.status_of("/readyz").await == Some(200)
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("schemathesis.toml");
    // Long-poll never waits: every generated `wait` is replaced by 0.
    std::fs::write(&config, "[parameters]\n\"query.wait\" = 0\n").unwrap();

    let mut cmd = Command::new(&exe);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .arg("run")
        .arg(gw.http_url("/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--phases",
            "examples,fuzzing",
            "--max-examples",
            "30",
            "--request-timeout",
            "5",
            "--workers",
            "2",
            "--exclude-path",
            "/v1/ws",
            "--exclude-path",
            "/v1/sse",
            "--suppress-health-check",
            "all",
            "--seed",
            "4242",
        ])
        .current_dir(dir.path())
        .env("NO_COLOR", "1");
    let started = Instant::now();
    let (ok, out) = tokio::task::spawn_blocking(move || run_bounded(cmd, HARD_TIMEOUT))
        .await
        .unwrap();
    eprintln!("schemathesis ran {:?}:\n{out}", started.elapsed());
    assert!(ok, "schemathesis found problems (see its report above)");
    // The run really exercised the job routes.
    assert!(out.contains("/v1/jobs"), "no job route was tested:\n{out}");
}

/// Inputs schemathesis rarely generates but PostgreSQL refuses (NUL
/// characters, which `text` and `jsonb` cannot hold; very long ids): each is a
/// client error, never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_job_inputs_are_client_errors() {
    let pg = TestPostgres::start();
    let redis = TestRedis::start();
    let gw = gateway(&redis)
        .postgres(&pg)
        .env("RELAY_AUTH", "off")
        .spawn()
        .await;
    eventually!(
        Duration::from_secs(30),
        gw.status_of("/readyz").await == Some(200)
    );
    let long = "a".repeat(10_000);
    let mut failures = Vec::new();
    let gets = [
        "/v1/jobs/%00".to_string(),
        format!("/v1/jobs/{long}"),
        "/v1/jobs?kind=%00".into(),
        "/v1/jobs?kind=a%00b&state=queued".into(),
        "/v1/jobs?cursor=%00".into(),
        "/v1/dead-letters?kind=%00".into(),
        "/v1/dead-letters?cursor=%00".into(),
        "/v1/poll?topics=a&since=%00&wait=0".into(),
    ];
    for path in &gets {
        let r = gw.http().get(gw.http_url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        if !(400..500).contains(&status) && status != 200 {
            failures.push(format!(
                "GET {path}: {status} {}",
                r.text().await.unwrap_or_default()
            ));
        }
    }
    let posts: Vec<(String, serde_json::Value)> = vec![
        ("/v1/jobs/%00/cancel".into(), serde_json::json!({})),
        (format!("/v1/jobs/{long}/cancel"), serde_json::json!({})),
        ("/v1/dead-letters/%00/redrive".into(), serde_json::json!({})),
        (
            "/v1/jobs".into(),
            serde_json::json!({"kind": "sleep", "payload": {"ms": 0, "steps": 1}, "idempotency_key": "k\u{0}"}),
        ),
        (
            "/v1/jobs".into(),
            serde_json::json!({"kind": "stream", "payload": {"text": "a\u{0}b", "chunk_chars": 8, "interval_ms": 20}}),
        ),
        (
            "/v1/jobs".into(),
            serde_json::json!({"kind": "sleep", "payload": {"ms": 0, "steps": 1, "\u{0}": 1}}),
        ),
    ];
    for (path, body) in &posts {
        let r = gw
            .http()
            .post(gw.http_url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status >= 500 {
            failures.push(format!(
                "POST {path} {body}: {status} {}",
                r.text().await.unwrap_or_default()
            ));
        }
    }
    // A multipart upload whose file name holds a NUL.
    let boundary = "relayboundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\u{0}b.csv\"\r\nContent-Type: text/csv\r\n\r\nID\r\n1\r\n--{boundary}--\r\n"
    );
    let r = gw
        .http()
        .post(gw.http_url("/v1/uploads"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status >= 500 {
        failures.push(format!(
            "POST /v1/uploads (NUL in file name): {status} {}",
            r.text().await.unwrap_or_default()
        ));
    }
    assert!(
        failures.is_empty(),
        "server errors:\n{}",
        failures.join("\n")
    );
}
