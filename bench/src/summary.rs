//! The table of a sitting: one row per JSON report in a directory (Relay's
//! and the peers', which share the keys read here), as Markdown.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

const HEADER: [&str; 7] = [
    "run",
    "scenario",
    "throughput",
    "latency p50 / p99 / max (ms)",
    "lost",
    "CPU per unit (µs, servers = all but the load generator)",
    "notes",
];

/// The table of every `*.json` report in `dir`, grouped by scenario and
/// rate so that Relay and its peers sit side by side.
pub fn of_dir(dir: &Path) -> Result<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let reports: Vec<(String, Option<Value>)> = files
        .iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let v = std::fs::read_to_string(p)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            (name, v)
        })
        .collect();
    Ok(table(&sorted(reports)))
}

/// Scenario, then rate, then Relay before its peers, then name.
fn sorted(mut reports: Vec<(String, Option<Value>)>) -> Vec<(String, Option<Value>)> {
    const SCENARIOS: [&str; 7] = [
        "fanout",
        "topics",
        "connections",
        "jobs",
        "jobs-open",
        "jobs-find-rate",
        "resume",
    ];
    const PEERS: [&str; 4] = ["relay", "bare", "socket.io", "bullmq"];
    let rank = |v: &Option<Value>| {
        let Some(v) = v else {
            return (usize::MAX, 0, 0);
        };
        let s = v["scenario"].as_str().unwrap_or("");
        let scenario = SCENARIOS
            .iter()
            .position(|x| *x == s)
            .unwrap_or(SCENARIOS.len());
        let rate = (num(&v["rate"]).unwrap_or(0.0) * 1000.0) as u64;
        let peer = PEERS
            .iter()
            .position(|x| *x == peer(v))
            .unwrap_or(PEERS.len());
        (scenario, rate, peer)
    };
    reports.sort_by(|a, b| rank(&a.1).cmp(&rank(&b.1)).then_with(|| a.0.cmp(&b.0)));
    reports
}

/// A Markdown table of `(run name, report)`; a report that is missing or
/// not JSON (the run failed) gets a row saying so.
pub fn table(reports: &[(String, Option<Value>)]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        HEADER.join(" | "),
        "---|".repeat(HEADER.len())
    );
    for (name, v) in reports {
        let cells = match v {
            Some(v) => row(v),
            None => [
                "-".into(),
                "no report (see log.txt)".into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
            ],
        };
        out.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
    }
    out
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// A JSON number as written by either side (`500.0` and `500` alike as `500`).
fn n(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => format!("{x}"),
        None if v.is_null() => "-".into(),
        None => v.to_string(),
    }
}

/// `1234567` as `1,234,567` (rounded); `-` when not a number.
fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

fn lat(v: &Value) -> String {
    match (num(&v["p50_ms"]), num(&v["p99_ms"]), num(&v["max_ms"])) {
        (Some(a), Some(b), Some(c)) => format!("{a} / {b} / {c}"),
        _ => "-".into(),
    }
}

/// `unit: servers X (role Y, ...)` for the first per-unit cost.
fn cost(v: &Value, unit_index: usize) -> String {
    let per = &v["cost"]["per"][unit_index];
    let Some(unit) = per["unit"].as_str() else {
        return "-".into();
    };
    let cpu = &per["cpu_us"];
    let Some(servers) = num(&cpu["servers"]) else {
        return format!("{unit}: -");
    };
    let roles: Vec<String> = cpu
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !matches!(k.as_str(), "servers" | "total"))
        .filter_map(|(k, x)| Some(format!("{k} {}", fmt_us(num(x)?))))
        .collect();
    format!("{unit}: **{}** ({})", fmt_us(servers), roles.join(", "))
}

fn fmt_us(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

fn scripts(v: &Value) -> String {
    match num(&v["redis"]["scripts"]["usec_per_call"]) {
        Some(u) => format!(
            "Redis {} µs per script call ({} calls)",
            u,
            thousands(num(&v["redis"]["scripts"]["calls"]).unwrap_or(0.0))
        ),
        None => String::new(),
    }
}

fn peer(v: &Value) -> &str {
    v["peer"].as_str().unwrap_or("relay")
}

fn row(v: &Value) -> [String; 6] {
    let scenario = v["scenario"].as_str().unwrap_or("?");
    let what = format!("{scenario} ({})", peer(v));
    let lost = |k: &str| v[k].as_u64().map_or("-".into(), |n| n.to_string());
    match scenario {
        "fanout" | "topics" => [
            what,
            format!(
                "{} deliveries/s, {} publishes/s ({} clients, {} topic{}, {} ev/s offered)",
                thousands(num(&v["deliveries_per_s"]).unwrap_or(0.0)),
                thousands(num(&v["publishes_per_s"]).unwrap_or(f64::NAN)),
                n(&v["clients"]),
                n(&v["topics"]),
                if v["topics"] == 1 { "" } else { "s" },
                n(&v["rate"])
            ),
            lat(&v["latency"]),
            lost("lost"),
            if scenario == "topics" {
                format!("{}; {}", cost(v, 1), cost(v, 0))
            } else {
                cost(v, 0)
            },
            [
                scripts(v),
                if v["publisher_fell_behind"] == true {
                    "publisher fell behind".into()
                } else {
                    String::new()
                },
            ]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        ],
        "connections" => {
            let servers = v["gateways"]
                .as_array()
                .or_else(|| v["servers"].as_array())
                .cloned()
                .unwrap_or_default();
            let per: Vec<String> = servers
                .iter()
                .filter_map(|s| num(&s["rss_per_connection_kib"]).map(|k| format!("{k} KiB")))
                .collect();
            [
                what,
                format!(
                    "{} connected, {} connects/s",
                    n(&v["connected"]),
                    thousands(num(&v["connects_per_s"]).unwrap_or(f64::NAN))
                ),
                "-".into(),
                lost("connect_failures"),
                cost(v, 0),
                format!("RSS per idle connection {}", per.join(", ")),
            ]
        }
        "jobs" => [
            what,
            format!(
                "{} completions/s, {} submits/s ({} jobs)",
                thousands(num(&v["completions_per_s"]).unwrap_or(0.0)),
                thousands(num(&v["submits_per_s"]).unwrap_or(0.0)),
                n(&v["jobs"])
            ),
            lat(&v["submit_to_completed"]),
            lost("lost"),
            cost(v, 0),
            scripts(v),
        ],
        "jobs-open" => [
            what,
            format!(
                "{} jobs/s scheduled, {} completions/s",
                n(&v["rate"]),
                thousands(num(&v["completions_per_s"]).unwrap_or(0.0))
            ),
            format!(
                "{} (p90 {})",
                lat(&v["submit_to_completed"]),
                n(&v["submit_to_completed"]["p90_ms"])
            ),
            format!("{} incomplete", lost("incomplete")),
            cost(v, 0),
            format!(
                "schedule lag p99 {} / max {} ms{}",
                n(&v["schedule_lag"]["p99_ms"]),
                n(&v["schedule_lag"]["max_ms"]),
                match scripts(v) {
                    s if s.is_empty() => s,
                    s => format!("; {s}"),
                }
            ),
        ],
        "jobs-find-rate" => {
            let steps: Vec<String> = v["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    format!(
                        "{}{}",
                        n(&s["rate"]),
                        if s["passed"] == true { "✓" } else { "✗" }
                    )
                })
                .collect();
            [
                what,
                format!(
                    "highest rate with p99 ≤ {} ms: **{}** jobs/s",
                    n(&v["target_p99_ms"]),
                    n(&v["best_rate"])
                ),
                "-".into(),
                "-".into(),
                "-".into(),
                format!(
                    "steps {}; stopped: {}; {} s",
                    steps.join(" "),
                    v["stopped"].as_str().unwrap_or("?"),
                    n(&v["sweep_secs"])
                ),
            ]
        }
        "resume" => [
            what,
            format!(
                "{} of {} caught up in {} s",
                n(&v["caught_up"]),
                n(&v["clients"]),
                n(&v["all_caught_up_secs"])
            ),
            lat(&v["time_to_catch_up"]),
            lost("lost"),
            cost(v, 0),
            format!("{} subscribe retries", n(&v["subscribe_retries"])),
        ],
        _ => [
            what,
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "".into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_per_report_with_its_headline_numbers() {
        let fanout = json!({
            "scenario": "fanout", "peer": "bare", "clients": 2000, "topics": 1, "rate": 125,
            "deliveries_per_s": 249138.0, "publishes_per_s": 125.0, "lost": 0,
            "latency": {"p50_ms": 12.5, "p99_ms": 40.1, "max_ms": 60.0},
            "cost": {"per": [{"unit": "delivery", "count": 2500000,
                              "cpu_us": {"server": 3.1, "bench": 2.0, "servers": 3.1, "total": 5.1}}]},
        });
        let find = json!({"scenario": "jobs-find-rate", "target_p99_ms": 50.0, "best_rate": 750.0,
                          "stopped": "refined", "sweep_secs": 80.0,
                          "steps": [{"rate": 500.0, "passed": true}, {"rate": 1000.0, "passed": false}]});
        let relay = json!({"scenario": "fanout", "rate": 125.0, "deliveries_per_s": 1.0});
        let relay_250 = json!({"scenario": "fanout", "rate": 250, "deliveries_per_s": 2.0});
        let t = table(&sorted(vec![
            ("broken".into(), None),
            ("relay-find-rate".into(), Some(find)),
            ("relay-fanout-250".into(), Some(relay_250)),
            ("bare-fanout".into(), Some(fanout)),
            ("relay-fanout".into(), Some(relay)),
        ]));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 7, "{t}");
        // Side by side: the same scenario and rate together, Relay first.
        let names: Vec<&str> = lines[2..]
            .iter()
            .map(|l| l.split('|').nth(1).unwrap_or("").trim())
            .collect();
        assert_eq!(
            names,
            [
                "relay-fanout",
                "bare-fanout",
                "relay-fanout-250",
                "relay-find-rate",
                "broken"
            ],
            "{t}"
        );
        assert!(lines[3].contains("249,138 deliveries/s"), "{t}");
        assert!(
            lines[3].contains("(2000 clients, 1 topic, 125 ev/s offered)"),
            "{t}"
        );
        assert!(lines[3].contains("12.5 / 40.1 / 60"), "{t}");
        assert!(
            lines[3].contains("delivery: **3.10** (bench 2.00, server 3.10)"),
            "{t}"
        );
        assert!(lines[2].contains("1 deliveries/s, - publishes/s"), "{t}");
        assert!(lines[5].contains("**750** jobs/s"), "{t}");
        assert!(lines[5].contains("500✓ 1000✗"), "{t}");
        assert!(lines[6].contains("no report"), "{t}");
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
