//! HTTP request duration by route: `relay_gateway_http_request_duration_seconds`
//! labelled with the matched route template (`/v1/jobs/{id}`, never the
//! path itself), the method and the status class (`2xx`..`5xx`).
//!
//! The time runs until the response head is ready: for WebSocket upgrades
//! and SSE that is the handshake, for long-polls the whole wait.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// The histogram's name.
pub const HTTP_DURATION: &str = "relay_gateway_http_request_duration_seconds";

/// Records how long each request took to answer.
pub async fn time(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = method_label(request.method());
    let start = Instant::now();
    let response = next.run(request).await;
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::histogram!(
        HTTP_DURATION,
        "route" => route,
        "method" => method,
        "status" => status
    )
    .record(start.elapsed().as_secs_f64());
    response
}

/// The method as a bounded label (unusual methods grouped as `other`).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
