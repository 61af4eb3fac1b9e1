//! Tracing and Prometheus metrics setup shared by both processes.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{CommonConfig, LogFormat};

/// Installs the tracing subscriber: `RELAY_LOG` filter, text or JSON lines.
///
/// With `RELAY_LOG_FORMAT=json` every line is one JSON object (see
/// [`FlatJson`]): `timestamp`, `level`, `target`, `span` (the innermost
/// span's name, when inside one), the fields of every enclosing span
/// (`conn_id`, `job_id`, `kind`, `attempt`, ...) and the event's own fields,
/// `message` included, all at the top level.
pub fn init_tracing(common: &CommonConfig) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&common.log).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match common.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    drop(result);
}

/// One JSON object per line, with span fields flattened to the top level.
///
/// `tracing-subscriber`'s own JSON format nests the current span's fields
/// under `"span"` and loses outer spans' fields; log pipelines want to filter
/// on `job_id` or `conn_id` directly, whatever span the line came from. Keys:
/// `timestamp` (RFC 3339, UTC), `level`, `target`, `span` (innermost span
/// name), then span fields from the outermost span inwards, then the event's
/// fields (an inner value wins over an outer one of the same name). A field
/// named like one of the four fixed keys is written as `field.<name>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatJson;

const FIXED_KEYS: [&str; 4] = ["timestamp", "level", "target", "span"];

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = serde_json::Map::new();
        let mut innermost = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                innermost = Some(span.name());
                let extensions = span.extensions();
                let Some(formatted) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                // JsonFields stores a span's fields as one JSON object.
                if let Ok(serde_json::Value::Object(map)) =
                    serde_json::from_str::<serde_json::Value>(formatted.as_str())
                {
                    fields.extend(map);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut fields));

        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(name) = innermost {
            line.insert("span".into(), name.into());
        }
        for (key, value) in fields {
            if FIXED_KEYS.contains(&key.as_str()) {
                line.insert(format!("field.{key}"), value);
            } else {
                line.insert(key, value);
            }
        }
        let text =
            serde_json::to_string(&serde_json::Value::Object(line)).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Records an event's fields as JSON values.
struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
}

/// Latency buckets in seconds, from 100 µs to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Run-time buckets in seconds for jobs, from 10 ms to 1 h.
pub const JOB_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the global Prometheus recorder and returns the handle that
/// renders `/metrics`. Histograms ending in `_seconds` get real buckets.
pub fn install_metrics(process: &str, instance: &str) -> PrometheusHandle {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Prefix("relay_job_".into()), JOB_BUCKETS))
        .map(|b| b.install_recorder());
    let handle = match handle {
        Ok(Ok(h)) => h,
        // Already installed (several servers in one test process): use a
        // fresh recorder that is not global.
        _ => PrometheusBuilder::new().build_recorder().handle(),
    };
    // Histogram samples wait in the recorder until a scrape or an upkeep
    // folds them into buckets: without a scraper they would pile up.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let upkeep = handle.clone();
        rt.spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
    }
    metrics::gauge!("relay_build_info", "process" => process.to_string(), "version" => env!("CARGO_PKG_VERSION"), "instance" => instance.to_string()).set(1.0);
    handle
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(run: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    #[test]
    fn json_lines_carry_the_fields_of_every_enclosing_span_at_the_top_level() {
        let lines = lines_of(|| {
            tracing::info!(n = 1, "outside");
            let job = tracing::info_span!("job", job_id = "j-1", kind = "sleep", attempt = 2);
            let _job = job.enter();
            let step = tracing::debug_span!("step", step = "match");
            let _step = step.enter();
            tracing::warn!(error = %"boom", ok = false, ratio = 0.5, level = "x", "inside \"quoted\"");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let outside = &lines[0];
        assert_eq!(outside["message"], "outside");
        assert_eq!(outside["n"], 1);
        assert_eq!(outside["level"], "INFO");
        assert!(outside.get("span").is_none());
        assert!(outside["timestamp"].as_str().unwrap().ends_with('Z'));
        let inside = &lines[1];
        assert_eq!(inside["message"], "inside \"quoted\"");
        assert_eq!(inside["level"], "WARN");
        assert_eq!(inside["span"], "step");
        assert_eq!(inside["job_id"], "j-1");
        assert_eq!(inside["kind"], "sleep");
        assert_eq!(inside["attempt"], 2);
        assert_eq!(inside["step"], "match");
        assert_eq!(inside["error"], "boom");
        assert_eq!(inside["ok"], false);
        assert_eq!(inside["ratio"], 0.5);
        assert_eq!(inside["field.level"], "x");
        assert_eq!(inside["target"], module_path!());
    }

    #[test]
    fn fields_recorded_later_on_a_span_are_included() {
        let lines = lines_of(|| {
            let span = tracing::info_span!("conn", conn_id = 7u64, user = tracing::field::Empty);
            span.record("user", "alice");
            span.in_scope(|| tracing::info!("hello"));
        });
        assert_eq!(lines[0]["conn_id"], 7);
        assert_eq!(lines[0]["user"], "alice");
    }
}
