//! The gateway's metrics. Label values are bounded sets (ops, codes,
//! reasons, outcomes), never topics, users or ids.

use metrics::{counter, gauge, histogram};
use relay_shared::protocol::ErrorCode;

pub const CONNECTIONS: &str = "relay_gateway_connections";
pub const SUBSCRIPTIONS: &str = "relay_gateway_subscriptions";
pub const TOPICS: &str = "relay_gateway_topics";
pub const EVENTS_DELIVERED: &str = "relay_gateway_events_delivered_total";
pub const EVENTS_RECEIVED: &str = "relay_gateway_pubsub_messages_total";
pub const EVENTS_PUBLISHED: &str = "relay_gateway_events_published_total";
pub const SLOW_CLOSES: &str = "relay_gateway_slow_consumer_closes_total";
pub const REPLAYED: &str = "relay_gateway_replayed_events_total";
pub const RECOVERY: &str = "relay_gateway_recovery_total";
pub const DELIVERY_LATENCY: &str = "relay_gateway_publish_to_send_seconds";
pub const WS_ERRORS: &str = "relay_gateway_ws_errors_total";
pub const HTTP_ERRORS: &str = "relay_gateway_http_errors_total";
pub const CLOSES: &str = "relay_gateway_closes_total";
pub const PUBSUB_LAGGED: &str = "relay_gateway_pubsub_lagged_total";
pub const PUBSUB_RESYNCS: &str = "relay_gateway_pubsub_resyncs_total";
pub const POLL_CLIENTS: &str = "relay_gateway_poll_requests_in_flight";
pub const SSE_CLIENTS: &str = "relay_gateway_sse_streams";
pub const LIMIT_HITS: &str = "relay_gateway_limit_hits_total";
pub const SUBSCRIBES: &str = "relay_gateway_subscribes_total";
pub const READY: &str = "relay_gateway_ready";
pub const DEPENDENCY_UP: &str = "relay_gateway_dependency_up";
pub const HISTORY_READS: &str = "relay_gateway_history_reads_total";

/// Describes every metric once, so `/metrics` carries HELP lines.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(CONNECTIONS, "Open WebSocket connections");
    describe_gauge!(
        SUBSCRIPTIONS,
        "Topic subscriptions held by WebSocket connections"
    );
    describe_gauge!(TOPICS, "Topics with local interest (subscribed channels)");
    describe_counter!(
        EVENTS_DELIVERED,
        "Event frames queued to clients, by transport"
    );
    describe_counter!(EVENTS_RECEIVED, "Live events received from Redis pub/sub");
    describe_counter!(
        EVENTS_PUBLISHED,
        "Events published through this gateway, by route"
    );
    describe_counter!(
        SLOW_CLOSES,
        "Connections closed with 4008 because they fell behind"
    );
    describe_counter!(REPLAYED, "Events replayed from history, by transport");
    describe_counter!(
        RECOVERY,
        "Resumes with since, by outcome (recovered or not)"
    );
    describe_histogram!(
        DELIVERY_LATENCY,
        Unit::Seconds,
        "Time from an event's acceptance to its queueing for a client"
    );
    describe_counter!(WS_ERRORS, "Error frames sent, by code");
    describe_counter!(HTTP_ERRORS, "HTTP error answers, by code");
    describe_counter!(CLOSES, "WebSocket closes, by reason");
    describe_counter!(
        PUBSUB_LAGGED,
        "Times the pub/sub reader fell behind Redis and closed its clients"
    );
    describe_counter!(
        PUBSUB_RESYNCS,
        "Resubscriptions and history catch-ups after Redis reconnects"
    );
    describe_gauge!(POLL_CLIENTS, "Long-poll requests in flight");
    describe_gauge!(SSE_CLIENTS, "Open SSE streams");
    describe_counter!(
        LIMIT_HITS,
        "Requests or frames refused by a limit, by limit"
    );
    describe_counter!(SUBSCRIBES, "Successful WebSocket subscribes");
    describe_counter!(
        HISTORY_READS,
        "History reads for WebSocket subscribes, by source (redis: a read of its own; shared: joined a waiting read)"
    );
    describe_gauge!(
        READY,
        "1 while /readyz would answer 200 (checked every few seconds), else 0"
    );
    describe_gauge!(
        DEPENDENCY_UP,
        "1 while a dependency answers (redis, pubsub, postgres), else 0"
    );
    describe_histogram!(
        crate::http::timing::HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by route template, method and status class"
    );
}

/// Records the outcome of a readiness check.
pub fn readiness(ready: bool, redis: bool, pubsub: bool, postgres: bool) {
    let v = |b: bool| if b { 1.0 } else { 0.0 };
    gauge!(READY).set(v(ready));
    gauge!(DEPENDENCY_UP, "dependency" => "redis").set(v(redis));
    gauge!(DEPENDENCY_UP, "dependency" => "pubsub").set(v(pubsub));
    gauge!(DEPENDENCY_UP, "dependency" => "postgres").set(v(postgres));
}

pub fn ws_error(code: ErrorCode) {
    counter!(WS_ERRORS, "code" => code.as_str()).increment(1);
}

pub fn http_error(code: ErrorCode) {
    counter!(HTTP_ERRORS, "code" => code.as_str()).increment(1);
}

pub fn limit_hit(limit: &'static str) {
    counter!(LIMIT_HITS, "limit" => limit).increment(1);
}

pub fn recovery(recovered: bool) {
    counter!(RECOVERY, "outcome" => if recovered { "recovered" } else { "not_recovered" })
        .increment(1);
}

pub fn closed(reason: &'static str) {
    counter!(CLOSES, "reason" => reason).increment(1);
}

pub fn replayed(transport: &'static str, n: usize) {
    counter!(REPLAYED, "transport" => transport).increment(n as u64);
}

pub fn delivered(transport: &'static str, n: u64) {
    counter!(EVENTS_DELIVERED, "transport" => transport).increment(n);
}

pub fn delivery_latency(ts_ms: u64) {
    let now = relay_shared::clock::now_ms();
    // Once per write batch per connection: look the histogram up once.
    static LATENCY: std::sync::OnceLock<metrics::Histogram> = std::sync::OnceLock::new();
    LATENCY
        .get_or_init(|| histogram!(DELIVERY_LATENCY))
        .record(now.saturating_sub(ts_ms) as f64 / 1000.0);
}

pub fn connections(delta: f64) {
    gauge!(CONNECTIONS).increment(delta);
}

pub fn subscriptions(delta: f64) {
    gauge!(SUBSCRIPTIONS).increment(delta);
    if delta > 0.0 {
        counter!(SUBSCRIBES).increment(delta as u64);
    }
}

/// A subscribe's history came from a Redis read of its own or a shared one.
pub fn history_read(shared: bool) {
    counter!(HISTORY_READS, "source" => if shared { "shared" } else { "redis" }).increment(1);
}
