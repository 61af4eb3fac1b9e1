//! Latency histograms and the printed report.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::sys::Usage;

/// A histogram of microseconds, 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

/// p50/p99/p999/max in milliseconds.
pub fn latency_json(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| (us as f64 / 1000.0 * 100.0).round() / 100.0;
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
    })
}

pub fn usage_json(usage: &[Usage]) -> Value {
    Value::Array(
        usage
            .iter()
            .map(|u| {
                json!({
                    "name": u.name,
                    "pid": u.pid,
                    "cpu_percent": (u.cpu_percent * 10.0).round() / 10.0,
                    "rss_mib": (u.rss_kib as f64 / 1024.0 * 10.0).round() / 10.0,
                })
            })
            .collect(),
    )
}

/// Prints a report as indented JSON (one object; `scenario` names it).
pub fn print(report: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).unwrap_or_default()
    );
}
