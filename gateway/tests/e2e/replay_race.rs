//! The replay race: clients subscribe (with and without `since`) while a
//! publisher pushes numbered events as fast as it can through two gateways.
//! Each client must see every event from its starting point to the end,
//! with no gap and no duplicate at the seam between replay and live.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use relay_testkit::{publish, RedisTarget, TestRedis, WsClient};
use serde_json::json;
use tokio::sync::watch;

use crate::support::{assert_seqs, gateway, only_events, seq_of};

const N: usize = 2000;
const TOPIC: &str = "race";

/// When a client starts and how it subscribes.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Start once this many events were published.
    after: usize,
    /// Subscribe with `since` = the id of the last of those events
    /// (otherwise without `since`, from the reported position).
    with_since: bool,
    /// Which gateway (0 or 1).
    gateway: usize,
}

const PLANS: &[Plan] = &[
    Plan {
        after: 1,
        with_since: true,
        gateway: 0,
    },
    Plan {
        after: 0,
        with_since: false,
        gateway: 1,
    },
    Plan {
        after: 150,
        with_since: true,
        gateway: 1,
    },
    Plan {
        after: 400,
        with_since: false,
        gateway: 0,
    },
    Plan {
        after: 401,
        with_since: true,
        gateway: 0,
    },
    Plan {
        after: 700,
        with_since: true,
        gateway: 1,
    },
    Plan {
        after: 1000,
        with_since: false,
        gateway: 1,
    },
    Plan {
        after: 1200,
        with_since: true,
        gateway: 0,
    },
    Plan {
        after: 1500,
        with_since: true,
        gateway: 1,
    },
    Plan {
        after: 1800,
        with_since: false,
        gateway: 0,
    },
    Plan {
        after: 1999,
        with_since: true,
        gateway: 1,
    },
    Plan {
        after: N,
        with_since: true,
        gateway: 0,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_mid_stream_never_gaps_or_duplicates() {
    replay_race(&TestRedis::start()).await;
}

/// The scenario itself, on one Redis or a cluster (see `cluster`).
pub(crate) async fn replay_race(redis: &impl RedisTarget) {
    let gateways = [
        Arc::new(
            gateway(redis)
                .env("RELAY_HISTORY_SIZE", "10000")
                .spawn()
                .await,
        ),
        Arc::new(
            gateway(redis)
                .env("RELAY_HISTORY_SIZE", "10000")
                .spawn()
                .await,
        ),
    ];
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let (published, watch_published) = watch::channel(0usize);

    let mut clients = Vec::new();
    for (n, plan) in PLANS.iter().copied().enumerate() {
        let url = gateways[plan.gateway].ws_url("/v1/ws");
        let ids = ids.clone();
        let mut progress = watch_published.clone();
        clients.push(tokio::spawn(async move {
            progress
                .wait_for(|&p| p >= plan.after)
                .await
                .expect("publisher alive");
            let since = plan
                .with_since
                .then(|| ids.lock().unwrap()[plan.after - 1].clone());
            let (mut c, _) = WsClient::connect_welcomed(&url).await;
            let (reply, before) = c
                .subscribe_ok(n as u64, TOPIC, since.as_deref(), None)
                .await;
            let mut events = only_events(before);
            // Where this client starts: everything after this id is its due.
            let start = since.or_else(|| reply["position"].as_str().map(String::from));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
            while events.last().map(seq_of) != Some(N as u64 - 1) {
                // Started at the very last event: nothing will come.
                if *progress.borrow() == N
                    && events.is_empty()
                    && start.as_ref() == ids.lock().unwrap().last()
                {
                    break;
                }
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                assert!(
                    !left.is_zero(),
                    "client {n} ({plan:?}) did not reach the last event; {} events",
                    events.len()
                );
                tokio::select! {
                    got = c.recv_events(1, left) => events.extend(got),
                    _ = progress.wait_for(|&p| p == N), if *progress.borrow() < N => {}
                }
            }
            (plan, reply, events, c)
        }));
    }

    let publisher = {
        let gateways = gateways.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let gw = &gateways[i % 2];
                let id = publish(gw, TOPIC, "test.seq", json!({"seq": i})).await;
                ids.lock().unwrap().push(id);
                published.send_replace(i + 1);
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(120), publisher)
        .await
        .expect("publisher finished in time")
        .unwrap();

    let results = tokio::time::timeout(Duration::from_secs(120), join_all(clients))
        .await
        .expect("clients finished");
    let ids = ids.lock().unwrap().clone();
    let mut finished = Vec::new();
    for (n, result) in results.into_iter().enumerate() {
        let (plan, reply, events, c) = result.unwrap_or_else(|e| panic!("client {n} failed: {e}"));
        assert_eq!(reply["recovered"], true, "client {n} ({plan:?}): {reply}");
        let replayed = reply["replayed"]
            .as_u64()
            .unwrap_or_else(|| panic!("no replayed count: {reply}"));
        assert!(
            replayed as usize <= events.len(),
            "client {n}: replayed {replayed} > events seen"
        );
        let first = if plan.with_since {
            plan.after
        } else {
            let position = reply["position"]
                .as_str()
                .unwrap_or_else(|| panic!("no position: {reply}"));
            if position == "0-0" {
                0
            } else {
                let at = ids.iter().position(|id| id == position);
                at.unwrap_or_else(|| {
                    panic!("client {n}: position {position} is not a published id")
                }) + 1
            }
        };
        let seqs: Vec<u64> = events.iter().map(seq_of).collect();
        if seqs != (first as u64..N as u64).collect::<Vec<_>>() {
            panic!(
                "client {n} ({plan:?}) from {first}: got {} events, first {:?}; gaps/duplicates: {:?}",
                seqs.len(),
                seqs.first(),
                describe_errors(&seqs, first as u64)
            );
        }
        assert_seqs(&events, TOPIC, first as u64..N as u64);
        for e in &events {
            let i = seq_of(e) as usize;
            assert_eq!(
                e["id"],
                ids[i].as_str(),
                "client {n}: event {i} carries another id"
            );
        }
        finished.push(c);
    }
    // Nothing after the last event either.
    join_all(
        finished
            .iter_mut()
            .map(|c| c.assert_silent(Duration::from_millis(300))),
    )
    .await;
}

/// The places where a sequence skips or repeats (for a readable failure).
fn describe_errors(seqs: &[u64], first: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut expected = first;
    for &s in seqs {
        if s != expected {
            out.push(format!("expected {expected}, got {s}"));
            if out.len() >= 10 {
                break;
            }
        }
        expected = s + 1;
    }
    out
}
