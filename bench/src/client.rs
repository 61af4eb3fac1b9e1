//! The WebSocket side of the load: connect (optionally from a chosen
//! loopback source address), subscribe, and read event frames cheaply.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// How long connecting plus the upgrade may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a `subscribed` reply may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Microseconds since the Unix epoch: the timestamp carried in each event.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Small buffers: thousands of clients live in this one process, and
/// tungstenite zero-fills the read buffer's free space before every read
/// (with 8 KiB that memset was the client's top user-space cost).
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
}

/// Connects to a `ws://` URL, binding the local end to `source` when given
/// (several 127.0.0.x sources multiply the ephemeral ports available).
pub async fn connect(url: &str, source: Option<IpAddr>) -> Result<Ws> {
    let uri: tokio_tungstenite::tungstenite::http::Uri = url.parse().context("gateway url")?;
    let host = uri.host().ok_or_else(|| anyhow!("no host in {url}"))?;
    let port = uri.port_u16().unwrap_or(80);
    let addr: SocketAddr = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| anyhow!("cannot resolve {host}"))?;
    let fut = async {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(config())).await?;
        anyhow::Ok(ws)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .map_err(|_| anyhow!("connect to {url} timed out"))?
}

/// The reply to a subscribe.
#[derive(Debug, Clone, Default)]
pub struct Subscribed {
    pub position: String,
    pub epoch: String,
    pub replayed: u64,
    pub recovered: bool,
}

/// Sends `subscribe` (with `since`/`epoch` when resuming) and waits for its
/// `subscribed`. Event frames that arrive first (a replay may overtake
/// nothing, but live events can) are handed to `early`.
pub async fn subscribe(
    ws: &mut Ws,
    topic: &str,
    resume: Option<(&str, &str)>,
    mut early: impl FnMut(&str),
) -> Result<Subscribed> {
    let mut frame = json!({"op": "subscribe", "id": 1, "topic": topic});
    if let Some((since, epoch)) = resume {
        frame["since"] = json!(since);
        frame["epoch"] = json!(epoch);
    }
    ws.send(Message::Text(frame.to_string().into())).await?;
    let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| anyhow!("no subscribed reply for {topic}"))?
            .ok_or_else(|| anyhow!("closed before subscribed"))??;
        let Message::Text(text) = msg else { continue };
        let text = text.as_str();
        // Relay's event frames, and a bare server's (the published body, no `op`).
        if text.starts_with(r#"{"op":"event""#) || !text.contains(r#""op":"#) {
            early(text);
            continue;
        }
        let v: Value = serde_json::from_str(text)?;
        match v["op"].as_str() {
            Some("subscribed") if v["id"] == 1 => {
                return Ok(Subscribed {
                    position: v["position"].as_str().unwrap_or("0-0").to_string(),
                    epoch: v["epoch"].as_str().unwrap_or_default().to_string(),
                    replayed: v["replayed"].as_u64().unwrap_or(0),
                    recovered: v["recovered"].as_bool().unwrap_or(false),
                })
            }
            Some("error") => bail!("subscribe {topic}: {text}"),
            _ => {}
        }
    }
}

/// The bench payload of an event frame: `(t, seq)` from `"data":{"t":..,"seq":..}`,
/// and the event id. Scans the text rather than parsing it, so that the
/// client side costs as little CPU as possible next to the gateways.
pub fn parse_event(frame: &str) -> Option<(u64, u64, &str)> {
    let data = frame.find(r#""data":"#)?;
    let rest = &frame[data..];
    let t = number_after(rest, r#""t":"#)?;
    let seq = number_after(rest, r#""seq":"#)?;
    let id_at = frame.find(r#""id":""#)? + 6;
    let id_len = frame[id_at..].find('"')?;
    Some((t, seq, &frame[id_at..id_at + id_len]))
}

/// The bench payload `(t, seq)` of any frame carrying
/// `"data":{"t":..,"seq":..}`: Relay's event frames, and a bare server's,
/// which are the published body itself (no event id).
pub fn parse_payload(frame: &str) -> Option<(u64, u64)> {
    let rest = &frame[frame.find(r#""data":"#)?..];
    Some((
        number_after(rest, r#""t":"#)?,
        number_after(rest, r#""seq":"#)?,
    ))
}

/// The string value after `key` (which ends with the opening quote), as in
/// `string_after(frame, r#""job_id":""#)`.
pub fn string_after<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let at = s.find(key)? + key.len();
    let len = s[at..].find('"')?;
    Some(&s[at..at + len])
}

fn number_after(s: &str, key: &str) -> Option<u64> {
    let at = s.find(key)? + key.len();
    let digits: &str = &s[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// A set of sequence numbers `0..n` seen, to count losses and duplicates.
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    bits: Vec<u64>,
    len: u64,
    pub distinct: u64,
    pub duplicates: u64,
    /// Sequence numbers at or past the size given (not expected).
    pub unexpected: u64,
}

impl SeqSet {
    pub fn new(n: u64) -> SeqSet {
        SeqSet {
            bits: vec![0; n.div_ceil(64) as usize],
            len: n,
            ..SeqSet::default()
        }
    }

    pub fn insert(&mut self, seq: u64) {
        if seq >= self.len {
            self.unexpected += 1;
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        match self.bits.get_mut(word) {
            Some(w) if *w & (1 << bit) != 0 => self.duplicates += 1,
            Some(w) => {
                *w |= 1 << bit;
                self.distinct += 1;
            }
            None => self.unexpected += 1,
        }
    }

    pub fn contains(&self, seq: u64) -> bool {
        self.bits
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_bench_payload() {
        let f = r#"{"op":"event","topic":"b.0","id":"1732240000000-3","type":"bench","data":{"t":1234567,"seq":42},"ts":1732240000000}"#;
        assert_eq!(parse_event(f), Some((1234567, 42, "1732240000000-3")));
        assert_eq!(parse_event(r#"{"op":"pong"}"#), None);
        assert_eq!(parse_payload(f), Some((1234567, 42)));
        // A bare server's frame: the publish body, keys in any order.
        let bare = r#"{"data":{"seq":7,"t":99},"topic":"b.0","type":"bench"}"#;
        assert_eq!(parse_payload(bare), Some((99, 7)));
        assert_eq!(parse_event(bare), None);
        let done = r#"{"op":"event","topic":"jobs","data":{"job_id":"01ab","result":{}}}"#;
        assert_eq!(string_after(done, r#""job_id":""#), Some("01ab"));
    }

    #[test]
    fn seq_set_counts() {
        let mut s = SeqSet::new(100);
        s.insert(0);
        s.insert(99);
        s.insert(99);
        s.insert(100);
        assert_eq!((s.distinct, s.duplicates, s.unexpected), (2, 1, 1));
        assert!(s.contains(99) && !s.contains(1));
    }
}
