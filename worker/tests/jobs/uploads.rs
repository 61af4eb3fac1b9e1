//! Uploads belong to their owner for every kind: every `{"upload_id"}`
//! object anywhere in a payload is checked at submit, and a custom kind
//! reads its upload chunk by chunk through the `JobContext`.

use std::time::Duration;

use relay_shared::config::WorkerConfig;
use relay_shared::jobs::JobState;
use relay_testkit::{jwt, TestGateway};
use relay_worker::{handler_fn, JobError, Worker};
use serde_json::{json, Value};
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use crate::support::{Harness, OWNER};

const T: Duration = Duration::from_secs(30);

async fn submit(gw: &TestGateway, sub: &str, body: Value) -> (u16, Value) {
    let token = jwt::hs256(&jwt::claims(sub));
    let resp = gw
        .http()
        .post(gw.http_url("/v1/jobs"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_s_payload_may_name_only_its_owner_s_uploads() {
    let h = Harness::start().await;
    // A kind of the application's, known because a worker registered it.
    h.jobs
        .queue
        .register_kinds(&["digest".to_string()])
        .await
        .unwrap();
    let gw = TestGateway::builder()
        .redis(&h.redis)
        .postgres(&h.pg)
        .env("RELAY_AUTH", "jwt")
        .env("RELAY_JWT_SECRET", jwt::SECRET)
        .spawn()
        .await;
    let alices = h.upload(b"id,amount\n1,10\n").await;

    for payload in [
        json!({"file": {"upload_id": alices}}),
        json!({"pages": [{"scan": {"upload_id": alices}}]}),
        json!({"upload_id": alices}),
    ] {
        let (status, body) =
            submit(&gw, "bob", json!({"kind": "digest", "payload": payload})).await;
        assert_eq!(status, 400, "bob named alice's upload in {payload}: {body}");
        assert_eq!(body["error"]["code"], "INVALID_MESSAGE", "{body}");
    }
    let (status, body) = submit(
        &gw,
        OWNER,
        json!({"kind": "digest", "payload": {"file": {"upload_id": "no-such-upload"}}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = submit(
        &gw,
        OWNER,
        json!({"kind": "digest", "payload": {"file": {"upload_id": 7}}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // The owner may.
    let (status, body) = submit(
        &gw,
        OWNER,
        json!({"kind": "digest", "payload": {"pages": [{"scan": {"upload_id": alices}}]}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_kind_reads_its_upload_chunk_by_chunk_through_the_job_context() {
    let h = Harness::start().await;
    // Two and a half chunks of data.
    let data: Vec<u8> = (0..(5 << 19)).map(|i| (i % 251) as u8).collect();
    let upload = h.upload(&data).await;

    let registry = relay_worker::kinds::builtins()
        .register(
            "digest",
            handler_fn(|ctx| async move {
                let id = ctx.payload()["file"]["upload_id"]
                    .as_str()
                    .ok_or_else(|| JobError::fatal("file.upload_id"))?
                    .to_string();
                let mut file = ctx.upload(&id).await?;
                let (mut hash, mut bytes, mut chunks) = (sha2::Sha256::new(), 0u64, 0u32);
                while let Some(chunk) = file.next_chunk().await? {
                    hash.update(&chunk);
                    bytes += chunk.len() as u64;
                    chunks += 1;
                }
                let sha: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
                Ok(json!({"bytes": bytes, "chunks": chunks, "sha256": sha, "stored_sha256": file.sha256()}))
            }),
        )
        .unwrap();
    let (redis_url, pg_url) = (h.redis.url(), h.pg.url());
    let config: WorkerConfig = relay_shared::config::parse([
        "relay-worker",
        "--redis-url",
        &redis_url,
        "--database-url",
        &pg_url,
    ])
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = CancellationToken::new();
    let worker = tokio::spawn(Worker::with_registry(config, registry).run(listener, stop.clone()));

    let id = h
        .submit("digest", json!({"file": {"upload_id": upload}}), json!({}))
        .await;
    let job = h.wait_end(&id, T).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let result = job.result.unwrap();
    assert_eq!(result["bytes"], data.len() as u64);
    assert_eq!(result["chunks"], 3);
    assert_eq!(result["sha256"], result["stored_sha256"]);

    // An unknown upload fails the job at once (not retried).
    let bad = h
        .submit("digest", json!({"file": {"upload_id": "nope"}}), json!({}))
        .await;
    let job = h.wait_end(&bad, T).await;
    assert_eq!((job.state, job.attempts), (JobState::Failed, 1), "{job:?}");
    assert!(job.error.unwrap().contains("unknown upload"));
    stop.cancel();
    let _ = tokio::time::timeout(T, worker).await;
}
