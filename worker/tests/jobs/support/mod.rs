//! What the worker's process-level tests share: a real Redis and PostgreSQL,
//! the job operations the gateway uses ([`Jobs`]), and readers of a job's
//! record and events.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use relay_shared::bus::{Bus, BusSettings};
use relay_shared::event::{Since, StreamId};
use relay_shared::jobs::events::JobEvents;
use relay_shared::jobs::model::{JobRecord, SubmitRequest};
use relay_shared::jobs::store::{StoreSettings, CHUNK_BYTES};
use relay_shared::jobs::{Jobs, Queue, Store};
use relay_shared::topic::Topic;
use relay_testkit::{wait_until, RedisTarget, TestPostgres, TestRedis, TestWorker, WorkerBuilder};
use serde_json::{json, Value};
use sha2::Digest;

pub const OWNER: &str = "alice";

/// A Redis (one server by default, or a [`relay_testkit::TestRedisCluster`]),
/// a PostgreSQL, and the job operations on them.
pub struct Harness<R = TestRedis> {
    pub redis: R,
    pub pg: TestPostgres,
    pub jobs: Jobs,
    pub bus: Bus,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_on(TestRedis::start()).await
    }
}

impl<R: RedisTarget> Harness<R> {
    /// A harness on this Redis (sharded pub/sub when it is a cluster).
    pub async fn start_on(redis: R) -> Harness<R> {
        let pg = TestPostgres::start();
        let url = redis.url();
        let sharded = url.starts_with("redis-cluster://");
        let client = relay_shared::redis::client(&url).unwrap();
        assert!(
            relay_shared::redis::connect_within(&client, Duration::from_secs(5)).await,
            "redis"
        );
        let bus = Bus::new(
            client.clone(),
            BusSettings {
                history_size: 10_000,
                history_ttl: Duration::from_secs(3600),
                sharded,
            },
        );
        let store = Store::new(&StoreSettings {
            url: pg.url(),
            max_connections: 8,
        })
        .unwrap();
        // A loaded machine can take longer than one connect timeout to
        // answer a fresh server's first connection: retry for a while.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match store.migrate().await {
                Ok(()) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("migration not done yet ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("migrations failed: {e}"),
            }
        }
        let jobs = Jobs::new(
            store,
            Queue::new(client, sharded),
            JobEvents::new(bus.clone()),
        );
        Harness {
            redis,
            pg,
            jobs,
            bus,
        }
    }

    /// A worker on this Redis and PostgreSQL, with a 2 s lease.
    pub fn worker(&self) -> WorkerBuilder {
        TestWorker::builder()
            .bin(env!("CARGO_BIN_EXE_relay-worker"))
            .env("RELAY_REDIS_URL", &self.redis.url())
            .postgres(&self.pg)
            .env("RELAY_JOB_LEASE", "2s")
            .env("RELAY_SHUTDOWN_GRACE", "6s")
    }

    /// Submits a job as [`OWNER`]; `extra` adds submit fields.
    pub async fn submit(&self, kind: &str, payload: Value, extra: Value) -> String {
        self.submit_as(OWNER, kind, payload, extra).await.0.id
    }

    pub async fn submit_as(
        &self,
        owner: &str,
        kind: &str,
        payload: Value,
        extra: Value,
    ) -> (JobRecord, bool) {
        let mut body = json!({ "kind": kind, "payload": payload });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let req: SubmitRequest = serde_json::from_value(body).unwrap();
        let job = req.validate(owner).unwrap();
        self.jobs.submit(job).await.unwrap()
    }

    pub async fn job(&self, id: &str) -> JobRecord {
        self.jobs
            .store
            .get_job(id)
            .await
            .unwrap()
            .expect("job exists")
    }

    /// Waits for the job's end to be recorded; returns its record (its
    /// terminal event may not be out yet).
    pub async fn wait_recorded(&self, id: &str, within: Duration) -> JobRecord {
        let ended = wait_until(within, || async {
            matches!(self.jobs.store.get_job(id).await, Ok(Some(j)) if j.state.is_terminal())
        })
        .await;
        let job = self.job(id).await;
        assert!(ended, "job {id} did not end within {within:?}: {job:?}");
        job
    }

    /// Waits for the job to end, recorded and announced on `job:{id}`;
    /// returns its record.
    pub async fn wait_end(&self, id: &str, within: Duration) -> JobRecord {
        let job = self.wait_recorded(id, within).await;
        let announced = wait_until(within, || async {
            !terminal_events(&self.events(id).await).is_empty()
        })
        .await;
        assert!(
            announced,
            "job {id} ended but its end was not announced: {job:?}"
        );
        job
    }

    /// Every event of `job:{id}` so far: (type, data).
    pub async fn events(&self, id: &str) -> Vec<(String, Value)> {
        self.topic_events(&format!("job:{id}")).await
    }

    pub async fn topic_events(&self, topic: &str) -> Vec<(String, Value)> {
        let topic = Topic::new(topic).unwrap();
        let h = self
            .bus
            .history(&topic, Some(Since::Id(StreamId::ZERO)), None, 100_000)
            .await
            .unwrap();
        h.events
            .iter()
            .map(|e| {
                let t: String = serde_json::from_slice(&e.type_json).unwrap();
                (t, serde_json::from_slice(&e.data).unwrap())
            })
            .collect()
    }

    /// Waits until the job has an event of this type; returns its data.
    pub async fn wait_event(&self, id: &str, kind: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let events = self.events(id).await;
            if let Some((_, d)) = events.iter().find(|(t, _)| t == kind) {
                return d.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} event on job:{id} within {within:?}: {events:?}"
            );
            tokio::time::sleep(relay_testkit::wait::POLL_INTERVAL).await;
        }
    }

    /// Stores `bytes` as a complete upload of [`OWNER`]; returns its id.
    pub async fn upload(&self, bytes: &[u8]) -> String {
        let store = &self.jobs.store;
        let id = relay_shared::jobs::new_token();
        store
            .create_upload(&id, OWNER, Some("test.csv"), Some("text/csv"))
            .await
            .unwrap();
        for (seq, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
            store.put_chunk(&id, seq as u32, chunk).await.unwrap();
        }
        let sha = hex(&sha2::Sha256::digest(bytes));
        store
            .complete_upload(&id, bytes.len() as u64, &sha)
            .await
            .unwrap();
        id
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The types of terminal events among `events`.
pub fn terminal_events(events: &[(String, Value)]) -> Vec<String> {
    events
        .iter()
        .map(|(t, _)| t.clone())
        .filter(|t| matches!(t.as_str(), "job.completed" | "job.failed" | "job.cancelled"))
        .collect()
}
