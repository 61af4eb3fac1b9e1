//! The job routes over real HTTP, in process (the whole gateway), against a
//! real Redis and PostgreSQL (no worker: jobs stay queued unless a test
//! says otherwise); and their documentation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_shared::config::GatewayConfig;
use relay_testkit::{TestPostgres, TestRedis};
use serde_json::{json, Value};
use tokio_util::sync::{CancellationToken, DropGuard};

const SECRET: &str = "jobs-test-secret-0123456789";
const API_KEY: &str = "jobs-test-api-key-0123456789";

struct Api {
    base: String,
    http: reqwest::Client,
    _redis: TestRedis,
    pg: TestPostgres,
    _stop: DropGuard,
}

fn token(sub: &str, admin: bool) -> String {
    let exp = relay_shared::clock::now_secs() + 3600;
    let claims = json!({ "sub": sub, "exp": exp, "admin": admin });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

impl Api {
    async fn start() -> Api {
        let redis = TestRedis::start();
        let pg = TestPostgres::start();
        let (redis_url, pg_url) = (redis.url(), pg.url());
        let args = [
            "relay-gateway",
            "--auth",
            "jwt",
            "--jwt-secret",
            SECRET,
            "--api-keys",
            API_KEY,
            "--redis-url",
            &redis_url,
            "--database-url",
            &pg_url,
            "--max-upload-bytes",
            "4096",
        ];
        let config = relay_shared::config::parse::<GatewayConfig, _, _>(args).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(crate::run(listener, config, shutdown.clone()));
        let http = reqwest::Client::new();
        let ready = format!("{base}/readyz");
        relay_testkit::eventually!(
            Duration::from_secs(20),
            http.get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        );
        Api {
            base,
            http,
            _redis: redis,
            pg,
            _stop: shutdown.drop_guard(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        who: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        req = match who {
            "key" => req.header("x-api-key", API_KEY),
            "admin" => req.bearer_auth(token("root", true)),
            "" => req,
            user => req.bearer_auth(token(user, false)),
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, who: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, who, Some(body))
            .await
    }

    async fn get(&self, path: &str, who: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, who, None).await
    }

    async fn upload(&self, who: &str, data: &[u8]) -> (u16, Value) {
        let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\n".to_vec();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        let resp = self
            .http
            .post(format!("{}/v1/uploads", self.base))
            .bearer_auth(token(who, false))
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_read_list_cancel_and_upload_over_http() {
    let mut api = Api::start().await;

    // Submit: 202, then the same idempotency key answers 200 with the same job.
    let body = json!({"kind": "sleep", "payload": {"ms": 10}, "idempotency_key": "k1", "delay_ms": 600000});
    let (status, first) = api.post("/v1/jobs", "alice", body.clone()).await;
    assert_eq!(status, 202, "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(first["state"], "queued");
    assert_eq!(first["topic"], format!("job:{id}"));
    assert_eq!(first["poll_url"], format!("/v1/poll?topics=job:{id}"));
    let (status, again) = api.post("/v1/jobs", "alice", body).await;
    assert_eq!((status, again["id"].as_str()), (200, Some(id.as_str())));

    // Validation: unknown kind, bad payload, unknown upload, no token.
    for (body, what) in [
        (json!({"kind": "nope"}), "unknown job kind"),
        (json!({"kind": "sleep", "payload": {"steps": 0}}), "steps"),
        (json!({"kind": "sleep", "priority": 1000}), "priority"),
        (
            json!({"kind": "reconcile", "payload": {"left": {"upload_id": "x"}, "right": {"upload_id": "y"}, "left_key": "A", "right_key": "B"}}),
            "unknown upload",
        ),
    ] {
        let (status, err) = api.post("/v1/jobs", "alice", body).await;
        assert_eq!((status, code(&err)), (400, "INVALID_MESSAGE"), "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(what),
            "{err}"
        );
    }
    assert_eq!(
        api.post("/v1/jobs", "", json!({"kind": "sleep"})).await.0,
        401
    );

    // Reading: the owner and admins see it; others get 404.
    let (status, job) = api.get(&format!("/v1/jobs/{id}"), "alice").await;
    assert_eq!(
        (status, job["owner"].as_str(), job["state"].as_str()),
        (200, Some("alice"), Some("queued"))
    );
    assert_eq!(job["attempts"], 0);
    assert_eq!(api.get(&format!("/v1/jobs/{id}"), "admin").await.0, 200);
    assert_eq!(api.get(&format!("/v1/jobs/{id}"), "bob").await.0, 404);
    assert_eq!(api.get("/v1/jobs/missing", "alice").await.0, 404);

    // Listing: newest first, filters, cursor pagination, own jobs only.
    let mut ids = vec![id.clone()];
    for i in 0..4 {
        let (_, j) = api
            .post(
                "/v1/jobs",
                "alice",
                json!({"kind": "stream", "payload": {"text": format!("t{i}")}, "delay_ms": 600000}),
            )
            .await;
        ids.push(j["id"].as_str().unwrap().to_string());
    }
    api.post(
        "/v1/jobs",
        "bob",
        json!({"kind": "sleep", "delay_ms": 600000}),
    )
    .await;
    let (_, page1) = api.get("/v1/jobs?limit=3", "alice").await;
    let got: Vec<&str> = page1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    let newest: Vec<&str> = ids.iter().rev().take(3).map(String::as_str).collect();
    assert_eq!(got, newest);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = api
        .get(&format!("/v1/jobs?limit=3&cursor={cursor}"), "alice")
        .await;
    assert_eq!(page2["jobs"].as_array().unwrap().len(), 2);
    assert!(page2["next_cursor"].is_null());
    let (_, streams) = api.get("/v1/jobs?kind=stream&state=queued", "alice").await;
    assert_eq!(streams["jobs"].as_array().unwrap().len(), 4);
    let (_, all) = api.get("/v1/jobs?limit=200", "admin").await;
    assert_eq!(all["jobs"].as_array().unwrap().len(), 6);
    assert_eq!(api.get("/v1/jobs?state=sleeping", "alice").await.0, 400);
    assert_eq!(api.get("/v1/jobs?cursor=garbage!", "alice").await.0, 400);

    // Cancel: a queued job at once (202), then 409; others' jobs are 404.
    assert_eq!(
        api.post(&format!("/v1/jobs/{id}/cancel"), "bob", json!({}))
            .await
            .0,
        404
    );
    let (status, cancelled) = api
        .post(&format!("/v1/jobs/{id}/cancel"), "alice", json!({}))
        .await;
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (202, Some("cancelled")),
        "{cancelled}"
    );
    let (status, err) = api
        .post(&format!("/v1/jobs/{id}/cancel"), "alice", json!({}))
        .await;
    assert_eq!((status, code(&err)), (409, "CONFLICT"));

    // Uploads: streamed, sized and hashed; too large is 413.
    let (status, up) = api.upload("alice", b"ID,AMOUNT\n1,10\n").await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(up["bytes"], 15);
    assert_eq!(
        up["sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"ID,AMOUNT\n1,10\n"))
    );
    let (status, err) = api.upload("alice", &vec![b'x'; 10_000]).await;
    assert_eq!((status, code(&err)), (413, "TOO_LARGE"));
    // Another user's upload cannot be named in a payload.
    let upload = up["upload_id"].as_str().unwrap();
    let rec = json!({"kind": "reconcile", "payload": {"left": {"upload_id": upload}, "right": {"upload_id": upload}, "left_key": "ID", "right_key": "ID"}, "delay_ms": 600000});
    assert_eq!(api.post("/v1/jobs", "bob", rec.clone()).await.0, 400);
    assert_eq!(api.post("/v1/jobs", "alice", rec).await.0, 202);

    // Dead letters: server API only.
    assert_eq!(api.get("/v1/dead-letters", "alice").await.0, 401);
    let (status, dead) = api.get("/v1/dead-letters", "key").await;
    assert_eq!(
        (status, dead["jobs"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    assert_eq!(
        api.post("/v1/dead-letters/missing/redrive", "key", json!({}))
            .await
            .0,
        404
    );

    // PostgreSQL down: 503 UNAVAILABLE, fast; back after a restart.
    api.pg.stop();
    let t0 = Instant::now();
    let (status, err) = api
        .post("/v1/jobs", "alice", json!({"kind": "sleep"}))
        .await;
    assert_eq!((status, code(&err)), (503, "UNAVAILABLE"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(api.get(&format!("/v1/jobs/{id}"), "alice").await.0, 503);
    api.pg.start_again();
    relay_testkit::eventually!(
        Duration::from_secs(20),
        api.post(
            "/v1/jobs",
            "alice",
            json!({"kind": "sleep", "delay_ms": 600000})
        )
        .await
        .0 == 202
    );
    assert_eq!(
        api.get(&format!("/v1/jobs/{id}"), "alice").await.1["state"],
        "cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submits_share_statements_and_keep_idempotency() {
    let api = Arc::new(Api::start().await);
    // Many submits at once land in shared insert statements: the ones with
    // one owner's key give one job (one 202, the rest 200 with its id),
    // another owner's same key gives another, and plain submits each a new one.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let (who, body) = match i % 3 {
                0 => (
                    "alice",
                    json!({"kind": "sleep", "idempotency_key": "same", "delay_ms": 600000}),
                ),
                1 => (
                    "bob",
                    json!({"kind": "sleep", "idempotency_key": "same", "delay_ms": 600000}),
                ),
                _ => ("alice", json!({"kind": "sleep", "delay_ms": 600000})),
            };
            let (status, body) = api.post("/v1/jobs", who, body).await;
            (
                i % 3,
                status,
                body["id"].as_str().unwrap_or_default().to_string(),
            )
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    for group in [0, 1] {
        let of: Vec<_> = answers.iter().filter(|(g, _, _)| *g == group).collect();
        assert_eq!(of.iter().filter(|(_, s, _)| *s == 202).count(), 1, "{of:?}");
        assert!(of.iter().all(|(_, s, _)| *s == 200 || *s == 202), "{of:?}");
        assert!(of.iter().all(|(_, _, id)| *id == of[0].2), "{of:?}");
    }
    let alice = answers.iter().find(|(g, _, _)| *g == 0).unwrap().2.clone();
    let bob = answers.iter().find(|(g, _, _)| *g == 1).unwrap().2.clone();
    assert_ne!(alice, bob);
    let plain: std::collections::HashSet<_> = answers
        .iter()
        .filter(|(g, s, _)| *g == 2 && *s == 202)
        .map(|(_, _, id)| id.clone())
        .collect();
    assert_eq!(plain.len(), 20);
    let (_, all) = api.get("/v1/jobs?limit=200", "admin").await;
    assert_eq!(all["jobs"].as_array().unwrap().len(), 22);
}

#[test]
fn job_routes_are_documented_with_axum_paths() {
    let doc = serde_json::to_value(crate::api(4096).split_for_parts().1).unwrap();
    for (path, method) in [
        ("/v1/jobs", "post"),
        ("/v1/jobs", "get"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/jobs/{id}/cancel", "post"),
        ("/v1/uploads", "post"),
        ("/v1/dead-letters", "get"),
        ("/v1/dead-letters/{id}/redrive", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["security"].is_array(), "{method} {path} has no security");
        for status in ["401", "429", "503"] {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path} does not document {status}"
            );
        }
    }
}
