//! The core event-path scenarios on a real three-master Redis Cluster
//! (`redis-cluster://`): each topic's stream, epoch and channel share the
//! hash tag `{t:<topic>}`, and gateways subscribe with `SSUBSCRIBE` on the
//! node of the topic's slot. The scenario bodies are the ones the other
//! files run on one Redis.

use std::collections::HashSet;
use std::time::Duration;

use relay_testkit::{eventually, publish, try_publish, TestRedisCluster, WsClient};
use serde_json::{json, Value};

use crate::support::{
    assert_seqs, error_code, gateway, id_of, only_events, publish_seqs, seq_of, QUIET, T,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fan_out_across_gateways_on_a_cluster() {
    crate::event_path::fan_out_across_gateways(&TestRedisCluster::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_mid_stream_never_gaps_or_duplicates_on_a_cluster() {
    crate::replay_race::replay_race(&TestRedisCluster::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_after_a_gateway_kill_on_a_cluster() {
    crate::event_path::resume_after_a_gateway_kill(&TestRedisCluster::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_across_gateways_on_a_cluster() {
    crate::http_transports::long_poll_across_gateways(&TestRedisCluster::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_resumes_on_another_gateway_on_a_cluster() {
    crate::http_transports::sse_resume_across_gateways(&TestRedisCluster::start()).await;
}

/// The shard channels with a subscriber, on every node (`PUBSUB
/// SHARDCHANNELS` answers for the node it is sent to): per node, how many.
fn shard_channels(cluster: &TestRedisCluster, pattern: &str) -> Vec<usize> {
    (0..cluster.ports().len())
        .map(|i| {
            cluster
                .cli_on(i, &["PUBSUB", "SHARDCHANNELS", pattern])
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count()
        })
        .collect()
}

/// One client subscribes to topics whose slots are on all three masters at
/// once: each topic's channel is subscribed on its own node, every event
/// arrives once, and when the client leaves every channel is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_on_every_master_are_subscribed_and_released_on_their_nodes() {
    const TOPICS: usize = 30;
    let cluster = TestRedisCluster::start();
    let a = gateway(&cluster).spawn().await;
    let b = gateway(&cluster).spawn().await;
    let topics: Vec<String> = (0..TOPICS).map(|i| format!("shard-{i}")).collect();
    let masters: HashSet<usize> = topics
        .iter()
        .map(|t| cluster.master_of(cluster.slot(&format!("relay:{{t:{t}}}:c"))))
        .collect();
    assert_eq!(masters.len(), 3, "the topics should span every master");

    // Every subscribe goes out before any reply is read.
    let (mut c, _) = WsClient::connect_welcomed(&a.ws_url("/v1/ws")).await;
    for (i, t) in topics.iter().enumerate() {
        c.send_json(&json!({"op": "subscribe", "id": i, "topic": t}))
            .await;
    }
    let mut replies = 0;
    c.recv_until(T, |f| {
        assert_eq!(f["op"], "subscribed", "{f}");
        replies += 1;
        replies == TOPICS
    })
    .await;
    let per_node = shard_channels(&cluster, "relay:{t:shard-*");
    assert_eq!(per_node.iter().sum::<usize>(), TOPICS, "{per_node:?}");
    assert!(per_node.iter().all(|&n| n > 0), "{per_node:?}");

    for t in &topics {
        publish(&b, t, "test.seq", json!({"seq": 0})).await;
    }
    let events = c.recv_events(TOPICS, T).await;
    let got: HashSet<&str> = events
        .iter()
        .map(|e| e["topic"].as_str().unwrap())
        .collect();
    assert_eq!(got.len(), TOPICS, "each topic's event once: {events:?}");
    c.assert_silent(QUIET).await;

    c.close().await;
    eventually!(
        Duration::from_secs(10),
        shard_channels(&cluster, "relay:{t:shard-*") == vec![0; 3],
        "channels still subscribed: {:?}",
        shard_channels(&cluster, "relay:{t:shard-*")
    );
}

/// A topic's master dies and its replica takes over: publishes fail fast
/// with 503 `UNAVAILABLE` until the fail-over, then succeed; a connected
/// client gets every event once (live, or by resuming with `since` when
/// its gateway closes it with 4008), and a client resuming on the other
/// gateway finds the history whole, `recovered`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failing_over_to_its_replica_loses_no_event() {
    const TOPIC: &str = "failover";
    let mut cluster = TestRedisCluster::start_with_replicas(1);
    let a = gateway(&cluster).spawn().await;
    let b = gateway(&cluster).spawn().await;
    let (mut c, _) = WsClient::connect_welcomed(&a.ws_url("/v1/ws")).await;
    let (s, _) = c.subscribe_ok(1, TOPIC, None, None).await;
    let epoch = s["epoch"].as_str().unwrap().to_string();
    publish_seqs(&b, TOPIC, 0..10).await;
    let mut seen = c.recv_events(10, T).await;
    let before_kill = id_of(&seen[9]).to_string();

    // Every acknowledged write has reached the replicas (replication is
    // asynchronous: what a master acknowledged and never sent is lost).
    cluster.wait_replicas_in_sync();
    let master = cluster.master_of(cluster.slot(&format!("relay:{{t:{TOPIC}}}:s")));
    cluster.kill(master);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let r = try_publish(&b, TOPIC, "test.seq", json!({"seq": 10})).await;
        let status = r.status().as_u16();
        if status == 200 {
            break;
        }
        let body: Value = r.json().await.unwrap();
        assert_eq!((status, error_code(&body)), (503, "UNAVAILABLE"), "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fail-over in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(
        cluster.master_of(cluster.slot(&format!("relay:{{t:{TOPIC}}}:s"))),
        master,
        "the replica serves the slot now"
    );
    publish_seqs(&b, TOPIC, 11..20).await;

    // The connected client: everything, once, live or after a resume.
    while seen.last().map(seq_of) != Some(19) {
        match c.next_json_or_end(Duration::from_secs(20)).await {
            Some(f) if f["op"] == "event" => seen.push(f),
            Some(f) => panic!("unexpected frame {f}"),
            None => {
                let last = id_of(seen.last().unwrap()).to_string();
                c = WsClient::connect_welcomed(&a.ws_url("/v1/ws")).await.0;
                let (s, before) = c.subscribe_ok(1, TOPIC, Some(&last), Some(&epoch)).await;
                assert_eq!(s["recovered"], true, "{s}");
                seen.extend(only_events(before));
            }
        }
    }
    assert_seqs(&seen, TOPIC, 0..20);
    c.assert_silent(QUIET).await;

    // Resuming from before the kill on the other gateway: the replica kept it all.
    let (mut r, _) = WsClient::connect_welcomed(&b.ws_url("/v1/ws")).await;
    let (s, mut events) = r
        .subscribe_ok(1, TOPIC, Some(&before_kill), Some(&epoch))
        .await;
    assert_eq!(
        (s["recovered"].clone(), s["replayed"].clone()),
        (json!(true), json!(10)),
        "{s}"
    );
    assert_eq!(s["epoch"], epoch.as_str());
    if events.len() < 10 {
        events.extend(r.recv_events(10 - events.len(), T).await);
    }
    assert_seqs(&only_events(events), TOPIC, 10..20);
}
