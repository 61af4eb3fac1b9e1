//! HTTP helpers: publishing through the server API, long-polling, and a
//! Server-Sent Events reader over the raw byte stream.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::process::TestGateway;
use crate::API_KEY;

/// `POST /v1/publish` with the test API key, answered within 10 s.
pub async fn try_publish(
    gw: &TestGateway,
    topic: &str,
    kind: &str,
    data: Value,
) -> reqwest::Response {
    gw.http()
        .post(gw.http_url("/v1/publish"))
        .header("X-Api-Key", API_KEY)
        .json(&serde_json::json!({"topic": topic, "type": kind, "data": data}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /v1/publish to {}: {e}", gw.addr()))
}

/// Publishes one event through `POST /v1/publish`; returns its `event_id`.
/// Panics unless the answer is 200 with an `event_id`.
pub async fn publish(gw: &TestGateway, topic: &str, kind: &str, data: Value) -> String {
    let r = try_publish(gw, topic, kind, data).await;
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(status, 200, "POST /v1/publish answered {status}: {body}");
    let v: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("publish answer is not JSON ({e}): {body}"));
    v["event_id"]
        .as_str()
        .unwrap_or_else(|| panic!("publish answer has no event_id: {body}"))
        .to_string()
}

/// `GET /v1/poll` with these query parameters (encoded here), answered
/// within 45 s; returns the status and the JSON body.
pub async fn poll(gw: &TestGateway, params: &[(&str, &str)]) -> (u16, Value) {
    let url = reqwest::Url::parse_with_params(&gw.http_url("/v1/poll"), params).expect("poll url");
    let r = gw
        .http()
        .get(url.clone())
        .timeout(Duration::from_secs(45))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    let v = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("poll answer ({status}) is not JSON ({e}): {body}"));
    (status, v)
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id:` field (a cursor for Relay), if the event had one.
    pub id: Option<String>,
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// The data parsed as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {}", self.data))
    }
}

/// A reader of a `text/event-stream` response, parsing the raw bytes
/// (`id:`, `event:`, `data:` fields; comments and `retry:` ignored).
pub struct SseStream {
    status: u16,
    content_type: String,
    stream: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Vec<u8>, String>> + Send>>,
    buf: Vec<u8>,
    pending: SseEvent,
    data_lines: usize,
}

impl SseStream {
    /// Opens `GET url` with `Accept: text/event-stream` (and `Last-Event-ID`
    /// when given); waits up to 10 s for the response head.
    pub async fn open(http: &reqwest::Client, url: &str, last_event_id: Option<&str>) -> SseStream {
        let mut req = http
            .get(url)
            .header("Accept", "text/event-stream")
            .timeout(Duration::from_secs(300));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let r = tokio::time::timeout(Duration::from_secs(10), req.send())
            .await
            .unwrap_or_else(|_| panic!("no SSE response head from {url} within 10 s"))
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let stream = r
            .bytes_stream()
            .map(|chunk| chunk.map(|b| b.to_vec()).map_err(|e| e.to_string()));
        SseStream {
            status,
            content_type,
            stream: Box::pin(stream),
            buf: Vec::new(),
            pending: SseEvent::default(),
            data_lines: 0,
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The next event; panics when none arrives within `timeout` or the stream ends.
    pub async fn next_event(&mut self, timeout: Duration) -> SseEvent {
        match tokio::time::timeout(timeout, self.next_inner()).await {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => panic!("SSE stream: {e}"),
            Err(_) => panic!("no SSE event within {timeout:?}"),
        }
    }

    /// The next `n` events, within `timeout` overall.
    pub async fn next_events(&mut self, n: usize, timeout: Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.next_inner()).await {
                Ok(Ok(e)) => out.push(e),
                Ok(Err(e)) => panic!("SSE stream: {e} after {} of {n} events", out.len()),
                Err(_) => panic!(
                    "only {} of {n} SSE events within {timeout:?}: {out:?}",
                    out.len()
                ),
            }
        }
        out
    }

    /// The next event, or `None` when the server ended the stream; panics
    /// when neither happens within `timeout`.
    pub async fn next_or_end(&mut self, timeout: Duration) -> Option<SseEvent> {
        match tokio::time::timeout(timeout, self.next_inner()).await {
            Ok(r) => r.ok(),
            Err(_) => panic!("no SSE event and no end of stream within {timeout:?}"),
        }
    }

    /// Asserts that no event arrives for `quiet`.
    pub async fn assert_silent(&mut self, quiet: Duration) {
        if let Ok(r) = tokio::time::timeout(quiet, self.next_inner()).await {
            panic!("expected no SSE event for {quiet:?}, got {r:?}");
        }
    }

    async fn next_inner(&mut self) -> Result<SseEvent, String> {
        loop {
            while let Some(line) = self.take_line() {
                if line.is_empty() {
                    // A blank line dispatches the event (if it has data).
                    let event = std::mem::take(&mut self.pending);
                    if std::mem::take(&mut self.data_lines) > 0 {
                        return Ok(event);
                    }
                    continue;
                }
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = match line.find(':') {
                    Some(i) => (
                        &line[..i],
                        line[i + 1..].strip_prefix(' ').unwrap_or(&line[i + 1..]),
                    ),
                    None => (line.as_str(), ""),
                };
                match field {
                    "id" => self.pending.id = Some(value.to_string()),
                    "event" => self.pending.event = Some(value.to_string()),
                    "data" => {
                        if self.data_lines > 0 {
                            self.pending.data.push('\n');
                        }
                        self.pending.data.push_str(value);
                        self.data_lines += 1;
                    }
                    _ => {}
                }
            }
            match self.stream.next().await {
                None => return Err("stream ended".into()),
                Some(Err(e)) => return Err(e),
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
            }
        }
    }

    fn take_line(&mut self) -> Option<String> {
        let i = self.buf.iter().position(|&b| b == b'\n')?;
        let mut line: Vec<u8> = self.buf.drain(..=i).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(String::from_utf8_lossy(&line).into_owned())
    }
}
