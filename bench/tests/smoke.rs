//! CI smoke test of every relay-bench scenario in a tiny form, against real
//! processes (Redis, PostgreSQL, gateways, a worker) started through the
//! testkit. It asserts only that each scenario completes and loses nothing;
//! timings are not asserted (they belong in BENCHMARKS.md, not in CI).

use relay_bench::connections::{self, ConnectionsArgs};
use relay_bench::fanout::{self, FanoutArgs};
use relay_bench::jobs::{self, JobsArgs};
use relay_bench::resume::{self, ResumeArgs};
use relay_bench::stack::Target;
use serde_json::Value;

fn spawn(gateways: usize) -> Target {
    Target {
        gateways: Vec::new(),
        gateway_pids: Vec::new(),
        api_key: relay_testkit::API_KEY.to_string(),
        spawn: gateways,
        bin_dir: None,
        redis_url: None,
    }
}

fn num(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_event_to_every_client() {
    let report = fanout::run(FanoutArgs {
        target: spawn(2),
        clients: 20,
        topics: 2,
        rate: 50,
        duration: 1.0,
        publishers: 2,
        source_ips: 2,
        connect_concurrency: 8,
        drain: 10.0,
    })
    .await
    .expect("fanout runs");
    assert_eq!(num(&report, "connected"), 20, "{report:#}");
    assert_eq!(num(&report, "published"), 50, "{report:#}");
    assert_eq!(num(&report, "publish_errors"), 0, "{report:#}");
    // 25 events per topic, 10 clients per topic.
    assert_eq!(num(&report, "delivered"), 500, "{report:#}");
    assert_eq!(num(&report, "lost"), 0, "{report:#}");
    assert_eq!(num(&report, "duplicates"), 0, "{report:#}");
    assert_eq!(report["latency"]["count"], 500, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reports_rss_per_connection() {
    let report = connections::run(ConnectionsArgs {
        target: spawn(1),
        clients: 50,
        topics: 5,
        source_ips: 1,
        connect_concurrency: 16,
        settle: 0.2,
    })
    .await
    .expect("connections runs");
    assert_eq!(num(&report, "connected"), 50, "{report:#}");
    assert_eq!(num(&report, "connect_failures"), 0, "{report:#}");
    let gw = &report["gateways"][0];
    assert_eq!(gw["connections"], 50, "{report:#}");
    assert!(
        gw["rss_after_mib"].as_f64().unwrap_or(0.0) > 0.0,
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_all_complete() {
    let report = jobs::run(JobsArgs {
        target: spawn(1),
        jobs: 40,
        submitters: 4,
        workers: 1,
        concurrency: 8,
        timeout: 30.0,
    })
    .await
    .expect("jobs runs");
    assert_eq!(num(&report, "accepted"), 40, "{report:#}");
    assert_eq!(num(&report, "completed"), 40, "{report:#}");
    assert_eq!(num(&report, "lost"), 0, "{report:#}");
    assert_eq!(num(&report, "records_matched"), 40, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_catches_everyone_up_without_loss() {
    let report = resume::run(ResumeArgs {
        target: spawn(2),
        clients: 20,
        missed: 15,
        source_ips: 1,
        connect_concurrency: 8,
        timeout: 20.0,
    })
    .await
    .expect("resume runs");
    assert_eq!(num(&report, "caught_up"), 20, "{report:#}");
    assert_eq!(num(&report, "failures"), 0, "{report:#}");
    assert_eq!(num(&report, "lost"), 0, "{report:#}");
    assert_eq!(num(&report, "not_recovered"), 0, "{report:#}");
    assert_eq!(num(&report, "replayed"), 20 * 15, "{report:#}");
    assert_eq!(num(&report, "duplicates_or_unexpected"), 0, "{report:#}");
}
