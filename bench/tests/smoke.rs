//! CI smoke test of every relay-bench scenario in a tiny form, against real
//! processes (Redis, PostgreSQL, gateways, a worker, the bare broadcast
//! server) started through the testkit. It asserts only that each scenario
//! completes, loses nothing and accounts for what it measured; timings are
//! not asserted (they belong in BENCHMARKS.md, not in CI).

use relay_bench::connections::{self, ConnectionsArgs};
use relay_bench::fanout::{self, FanoutArgs, Pick};
use relay_bench::jobs::{self, JobsArgs};
use relay_bench::resume::{self, ResumeArgs};
use relay_bench::stack::Target;
use relay_bench::topics::{self, TopicsArgs};
use serde_json::Value;

fn spawn(gateways: usize) -> Target {
    Target::spawning(gateways)
}

fn num(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {report:#}"))
}

/// The report's CPU accounting: the `unit` at `index` counted `count`
/// units, and every role in `roles` (plus the load generator) was measured.
fn assert_costed(report: &Value, index: usize, unit: &str, count: u64, roles: &[&str]) {
    let per = &report["cost"]["per"][index];
    assert_eq!(per["unit"], unit, "{report:#}");
    assert_eq!(per["count"], count, "{report:#}");
    for role in roles.iter().chain(&["bench", "servers", "total"]) {
        let cpu_s = report["cost"]["cpu_s"][role].as_f64();
        assert!(
            cpu_s.is_some_and(|s| s >= 0.0),
            "no CPU for {role}: {report:#}"
        );
    }
    let measured: Vec<&str> = report["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["role"].as_str())
        .collect();
    for role in roles {
        assert!(measured.contains(role), "{role} not measured: {report:#}");
    }
}

fn fanout_args(target: Target, clients: usize, topics: usize, rate: u64) -> FanoutArgs {
    FanoutArgs {
        target,
        clients,
        topics,
        rate,
        duration: 1.0,
        publishers: 2,
        source_ips: 2,
        connect_concurrency: 8,
        drain: 10.0,
        pick: Pick::RoundRobin,
        topic_prefix: None,
        seed: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_event_to_every_client() {
    let report = fanout::run(fanout_args(spawn(2), 20, 2, 50))
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
    assert_costed(&report, 0, "delivery", 500, &["gateway", "redis"]);
    assert_costed(&report, 1, "publish", 50, &["gateway", "redis"]);
    // Redis's own account: at least one publish script call per event.
    assert!(
        report["redis"]["scripts"]["calls"].as_u64().unwrap_or(0) >= 50,
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_server_delivers_every_event_to_every_client() {
    // Two bare servers share nothing: each publish goes to both.
    let report = fanout::run(fanout_args(Target::spawning_bare(2), 20, 2, 50))
        .await
        .expect("fanout against bare servers runs");
    assert_eq!(report["peer"], "bare", "{report:#}");
    assert_eq!(num(&report, "connected"), 20, "{report:#}");
    assert_eq!(num(&report, "published"), 50, "{report:#}");
    assert_eq!(num(&report, "publish_errors"), 0, "{report:#}");
    assert_eq!(num(&report, "delivered"), 500, "{report:#}");
    assert_eq!(num(&report, "lost"), 0, "{report:#}");
    assert_eq!(num(&report, "duplicates"), 0, "{report:#}");
    assert_eq!(report["latency"]["count"], 500, "{report:#}");
    assert_costed(&report, 0, "delivery", 500, &["server"]);
    assert!(report["redis"].is_null(), "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_delivers_each_event_to_its_one_subscriber_and_reads_redis_time() {
    let report = topics::run(TopicsArgs {
        target: spawn(1),
        clients: 30,
        rate: 60,
        duration: 1.0,
        publishers: 4,
        source_ips: 1,
        connect_concurrency: 8,
        drain: 10.0,
        seed: 7,
    })
    .await
    .expect("topics runs");
    assert_eq!(report["scenario"], "topics", "{report:#}");
    assert_eq!(num(&report, "topics"), 30, "{report:#}");
    assert_eq!(num(&report, "connected"), 30, "{report:#}");
    assert_eq!(num(&report, "published"), 60, "{report:#}");
    assert_eq!(num(&report, "publish_errors"), 0, "{report:#}");
    // One subscriber per topic: each event is delivered exactly once.
    assert_eq!(num(&report, "delivered"), 60, "{report:#}");
    assert_eq!(num(&report, "lost"), 0, "{report:#}");
    assert_eq!(num(&report, "duplicates"), 0, "{report:#}");
    assert_costed(&report, 1, "publish", 60, &["gateway", "redis"]);
    let scripts = &report["redis"]["scripts"];
    assert!(scripts["calls"].as_u64().unwrap_or(0) >= 60, "{report:#}");
    assert!(
        scripts["usec_per_call"].as_f64().is_some_and(|u| u > 0.0),
        "{report:#}"
    );
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
    assert_costed(
        &report,
        0,
        "idle connection-second",
        10,
        &["gateway", "redis"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_against_the_bare_server_reports_rss_per_connection() {
    let report = connections::run(ConnectionsArgs {
        target: Target::spawning_bare(1),
        clients: 50,
        topics: 5,
        source_ips: 1,
        connect_concurrency: 16,
        settle: 0.2,
    })
    .await
    .expect("connections against a bare server runs");
    assert_eq!(report["peer"], "bare", "{report:#}");
    assert_eq!(num(&report, "connected"), 50, "{report:#}");
    assert_eq!(num(&report, "connect_failures"), 0, "{report:#}");
    let server = &report["gateways"][0];
    assert_eq!(server["connections"], 50, "{report:#}");
    assert!(
        server["rss_after_mib"].as_f64().unwrap_or(0.0) > 0.0,
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_all_complete() {
    let report = jobs::run(JobsArgs {
        submitters: 4,
        concurrency: 8,
        timeout: 30.0,
        ..JobsArgs::closed(spawn(1), 40)
    })
    .await
    .expect("jobs runs");
    assert_eq!(num(&report, "accepted"), 40, "{report:#}");
    assert_eq!(num(&report, "completed"), 40, "{report:#}");
    assert_eq!(num(&report, "lost"), 0, "{report:#}");
    assert_eq!(num(&report, "records_matched"), 40, "{report:#}");
    assert_eq!(report["submit_to_completed"]["count"], 40, "{report:#}");
    assert_costed(
        &report,
        0,
        "job",
        40,
        &["gateway", "worker", "redis", "postgres"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_open_loop_submits_on_schedule_and_measures_every_job() {
    let report = jobs::run(JobsArgs {
        rate: Some(20.0),
        duration: 1.0,
        warmup: 0.5,
        concurrency: 8,
        timeout: 30.0,
        ..JobsArgs::closed(spawn(1), 0)
    })
    .await
    .expect("open-loop jobs runs");
    assert_eq!(report["scenario"], "jobs-open", "{report:#}");
    // 0.5 s of warm-up and 1 s measured at 20/s.
    assert_eq!(num(&report, "scheduled"), 30, "{report:#}");
    assert_eq!(num(&report, "measured"), 20, "{report:#}");
    assert_eq!(num(&report, "accepted"), 30, "{report:#}");
    assert_eq!(num(&report, "completed"), 30, "{report:#}");
    assert_eq!(num(&report, "incomplete"), 0, "{report:#}");
    assert_eq!(num(&report, "records_matched"), 30, "{report:#}");
    assert_eq!(
        num(&report, "unfinished_counted_at_deadline"),
        0,
        "{report:#}"
    );
    assert_eq!(report["submit_to_completed"]["count"], 20, "{report:#}");
    assert_eq!(report["schedule_lag"]["count"], 30, "{report:#}");
    assert_eq!(report["submit_answer"]["count"], 30, "{report:#}");
    assert_costed(
        &report,
        0,
        "job",
        30,
        &["gateway", "worker", "redis", "postgres"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_find_rate_steps_up_to_the_highest_rate_kept() {
    // A target no run misses (a minute), so the sweep rises to --max-rate.
    let report = jobs::run(JobsArgs {
        find_rate: true,
        rate: Some(10.0),
        max_rate: 15.0,
        step_factor: 1.5,
        target_p99_ms: 60_000.0,
        duration: 1.0,
        warmup: 0.0,
        budget: 60.0,
        concurrency: 8,
        timeout: 30.0,
        ..JobsArgs::closed(spawn(1), 0)
    })
    .await
    .expect("find-rate runs");
    assert_eq!(report["scenario"], "jobs-find-rate", "{report:#}");
    let steps = report["steps"].as_array().expect("steps");
    let rates: Vec<f64> = steps.iter().filter_map(|s| s["rate"].as_f64()).collect();
    assert_eq!(rates, [10.0, 15.0], "{report:#}");
    for s in steps {
        assert_eq!(s["passed"], true, "{s:#}");
        assert_eq!(s["completed"], s["scheduled"], "{s:#}");
        assert_eq!(s["incomplete"], 0, "{s:#}");
    }
    assert_eq!(report["best_rate"], 15.0, "{report:#}");
    assert!(report["lowest_failing_rate"].is_null(), "{report:#}");
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
    assert_costed(&report, 0, "replayed event", 20 * 15, &["gateway", "redis"]);
}
