//! The bare server's HTTP/1.1 side, on the same port as the WebSocket:
//! keep-alive requests parsed with `httparse`, bodies by `Content-Length`.
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/publish` `{"topic":"t",...}` | `200 {"event_id":"<n>","receivers":<n>}`: the body itself goes to `t`'s subscribers |
//! | `POST /v1/broadcast` `{"topics":["a","b"],...}` | `200 {"receivers":<n>}`: the body to each topic |
//! | `GET /healthz` | `200 ok` |
//! | `GET /stats` | `200` the hub's counters |

use std::sync::atomic::Ordering;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::Hub;

/// Largest request head (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body.
const MAX_BODY: usize = 1024 * 1024;
/// Most headers parsed in a request.
const MAX_HEADERS: usize = 32;

struct Head {
    method: String,
    path: String,
    len: usize,
    body_len: usize,
    close: bool,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("bad request"),
    };
    let mut body_len = 0;
    let mut close = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or("bad content-length")?;
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked bodies are not supported");
        }
    }
    Ok(Some(Head {
        method: req.method.unwrap_or_default().to_string(),
        path: req.path.unwrap_or_default().to_string(),
        len,
        body_len,
        close,
    }))
}

/// Serves requests on one connection until it closes or errs.
pub(super) async fn serve(mut stream: TcpStream, hub: &Hub) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let head = loop {
            match parse_head(&buf) {
                Ok(Some(head)) => break head,
                Ok(None) if buf.len() < MAX_HEAD => {}
                Ok(None) | Err(_) => {
                    let _ = respond(&mut stream, 400, "{\"error\":\"bad request\"}").await;
                    return;
                }
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        if head.body_len > MAX_BODY {
            let _ = respond(&mut stream, 413, "{\"error\":\"body too large\"}").await;
            return;
        }
        let end = head.len + head.body_len;
        while buf.len() < end {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let (status, body) = route(&head, &buf[head.len..end], hub);
        buf.drain(..end);
        if respond(&mut stream, status, &body).await.is_err() || head.close {
            return;
        }
    }
}

fn route(head: &Head, body: &[u8], hub: &Hub) -> (u16, String) {
    match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/healthz") => (200, "ok".into()),
        ("GET", "/stats") => (200, hub.stats_json().to_string()),
        ("POST", "/v1/publish") | ("POST", "/v1/broadcast") => {
            let Ok(text) = std::str::from_utf8(body) else {
                return (400, json!({"error": "body is not UTF-8"}).to_string());
            };
            let Ok(v) = serde_json::from_str::<Value>(text) else {
                return (400, json!({"error": "body is not JSON"}).to_string());
            };
            let frame = Utf8Bytes::from(text.to_string());
            if head.path == "/v1/publish" {
                let Some(topic) = v["topic"].as_str() else {
                    return (400, json!({"error": "no topic"}).to_string());
                };
                let n = hub.publish(topic, frame);
                let id = hub.stats.published.load(Ordering::Relaxed);
                (
                    200,
                    json!({"event_id": id.to_string(), "receivers": n}).to_string(),
                )
            } else {
                let Some(topics) = v["topics"].as_array() else {
                    return (400, json!({"error": "no topics"}).to_string());
                };
                let n: usize = topics
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|t| hub.publish(t, frame.clone()))
                    .sum();
                (200, json!({"receivers": n}).to_string())
            }
        }
        _ => (404, json!({"error": "not found"}).to_string()),
    }
}

async fn respond(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Payload Too Large",
        _ => "Error",
    };
    let out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(out.as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_keep_alive_post_head() {
        let req =
            b"POST /v1/publish HTTP/1.1\r\nhost: x\r\ncontent-length: 12\r\n\r\n{\"topic\":\"a\"}";
        let head = parse_head(req).unwrap().unwrap();
        assert_eq!(
            (head.method.as_str(), head.path.as_str()),
            ("POST", "/v1/publish")
        );
        assert_eq!(head.body_len, 12);
        assert!(!head.close);
        assert!(parse_head(b"POST /v1/publish HTTP/1.1\r\nhost")
            .unwrap()
            .is_none());
        assert!(parse_head(b"\x00\x01 nonsense\r\n\r\n").is_err());
    }

    #[test]
    fn publish_reaches_the_topic_subscribers_with_the_body_unchanged() {
        let hub = Hub::new(super::super::BareConfig { queue: 4 });
        let mut a = hub.subscribe("a");
        let mut b = hub.subscribe("b");
        let body = br#"{"topic":"a","type":"bench","data":{"t":1,"seq":0}}"#;
        let head = parse_head(
            format!(
                "POST /v1/publish HTTP/1.1\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap()
        .unwrap();
        let (status, answer) = route(&head, body, &hub);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(a.try_recv().unwrap().as_str().as_bytes(), body);
        assert!(b.try_recv().is_err());
        let (status, _) = route(&head, b"{\"no\":1}", &hub);
        assert_eq!(status, 400);
    }
}
