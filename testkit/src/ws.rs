//! WebSocket clients: a well-behaved one over tokio-tungstenite, and a raw
//! one that reads only when told and never answers pings.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long connecting (TCP and upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A WebSocket client that behaves: it answers pings whenever it reads.
///
/// Reading is strict: [`next_json`](Self::next_json) returns the very next
/// text frame and fails the test on a timeout, a close or a non-JSON frame;
/// nothing is skipped silently.
pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// Connects (upgrade included) within 10 s; panics on failure.
    pub async fn connect(url: &str) -> WsClient {
        match Self::try_connect(url).await {
            Ok(c) => c,
            Err(e) => panic!("WebSocket connect to {url}: {e}"),
        }
    }

    /// Connects, returning the error (e.g. an HTTP 401 refusal) instead of panicking.
    pub async fn try_connect(url: &str) -> Result<WsClient, tungstenite::Error> {
        let connect = tokio_tungstenite::connect_async(url);
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok((ws, _))) => Ok(WsClient { ws }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(tungstenite::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))),
        }
    }

    /// Connects and reads the `welcome` frame, which must come first.
    pub async fn connect_welcomed(url: &str) -> (WsClient, Value) {
        let mut c = Self::connect(url).await;
        let welcome = c.next_op("welcome", Duration::from_secs(5)).await;
        (c, welcome)
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        let send = self.ws.send(Message::text(text));
        match tokio::time::timeout(Duration::from_secs(10), send).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("WebSocket send failed: {e}"),
            Err(_) => panic!("WebSocket send did not finish in 10 s"),
        }
    }

    /// Sends a message without panicking (for frames the server may refuse by closing).
    pub async fn try_send(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.ws.send(message).await
    }

    /// The next text frame, as JSON; panics on timeout, close, error or a
    /// non-JSON frame. Pings and pongs are answered and not returned.
    pub async fn next_json(&mut self, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await;
            let message = match next {
                Err(_) => panic!("no frame within {timeout:?}"),
                Ok(None) => panic!("connection ended while waiting for a frame"),
                Ok(Some(Err(e))) => panic!("WebSocket error while waiting for a frame: {e}"),
                Ok(Some(Ok(m))) => m,
            };
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {}", text.as_str()));
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(frame) => {
                    panic!("connection closed while waiting for a frame: {frame:?}")
                }
                other => panic!("unexpected frame: {other:?}"),
            }
        }
    }

    /// The next text frame as JSON, or `None` when the connection ends
    /// (closed, reset, or a WebSocket error) first; panics on a timeout.
    pub async fn next_json_or_end(&mut self, timeout: Duration) -> Option<Value> {
        match tokio::time::timeout(timeout, self.next_json_inner()).await {
            Err(_) => panic!("no frame and no end within {timeout:?}"),
            Ok(Ok(frame)) => Some(frame),
            Ok(Err(_)) => None,
        }
    }

    /// The next text frame, which must have this `op`; panics showing the
    /// frame otherwise (no frame is skipped).
    pub async fn next_op(&mut self, op: &str, timeout: Duration) -> Value {
        let frame = self.next_json(timeout).await;
        assert_eq!(frame["op"], op, "expected an {op:?} frame, got {frame}");
        frame
    }

    /// Reads frames until one satisfies `done` (within `timeout` overall) and
    /// returns every frame read, that one last.
    pub async fn recv_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                panic!(
                    "condition not met within {timeout:?}; frames seen: {}",
                    show(&seen)
                );
            }
            let frame = match tokio::time::timeout(left, self.next_json_inner()).await {
                Ok(Ok(frame)) => frame,
                Ok(Err(e)) => panic!("{e}; frames seen: {}", show(&seen)),
                Err(_) => panic!(
                    "condition not met within {timeout:?}; frames seen: {}",
                    show(&seen)
                ),
            };
            let stop = done(&frame);
            seen.push(frame);
            if stop {
                return seen;
            }
        }
    }

    /// Reads exactly `n` frames, each of which must be an event; panics on
    /// anything else or when they do not arrive within `timeout`.
    pub async fn recv_events(&mut self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = match tokio::time::timeout(left, self.next_json_inner()).await {
                Ok(Ok(frame)) => frame,
                Ok(Err(e)) => panic!("{e} after {} of {n} events", events.len()),
                Err(_) => panic!(
                    "only {} of {n} events within {timeout:?}; last: {:?}",
                    events.len(),
                    events.last()
                ),
            };
            assert_eq!(
                frame["op"],
                "event",
                "expected an event, got {frame} after {} events",
                events.len()
            );
            events.push(frame);
        }
        events
    }

    /// Asserts that no frame arrives for `quiet` (e.g. no duplicate after the
    /// last expected event).
    pub async fn assert_silent(&mut self, quiet: Duration) {
        if let Ok(r) = tokio::time::timeout(quiet, self.next_json_inner()).await {
            match r {
                Ok(frame) => panic!("expected no frame for {quiet:?}, got {frame}"),
                Err(e) => panic!("expected no frame for {quiet:?}, got: {e}"),
            }
        }
    }

    /// Sends `{"op":"subscribe"}` and reads until the `subscribed` (or
    /// `error`) reply with this `id`; returns the reply and the frames that
    /// came before it.
    pub async fn subscribe(
        &mut self,
        id: u64,
        topic: &str,
        since: Option<&str>,
        epoch: Option<&str>,
    ) -> (Value, Vec<Value>) {
        let mut frame = serde_json::json!({"op": "subscribe", "id": id, "topic": topic});
        if let Some(since) = since {
            frame["since"] = since.into();
        }
        if let Some(epoch) = epoch {
            frame["epoch"] = epoch.into();
        }
        self.send_json(&frame).await;
        let mut frames = self
            .recv_until(Duration::from_secs(10), |f| {
                (f["op"] == "subscribed" || f["op"] == "error") && f["id"] == id
            })
            .await;
        let reply = frames.pop().expect("reply");
        (reply, frames)
    }

    /// Like [`subscribe`](Self::subscribe), but the reply must be `subscribed`.
    pub async fn subscribe_ok(
        &mut self,
        id: u64,
        topic: &str,
        since: Option<&str>,
        epoch: Option<&str>,
    ) -> (Value, Vec<Value>) {
        let (reply, before) = self.subscribe(id, topic, since, epoch).await;
        assert_eq!(
            reply["op"], "subscribed",
            "subscribe to {topic} refused: {reply}"
        );
        (reply, before)
    }

    /// Sends `{"op":"ping"}` and expects the very next frame to be `pong`.
    pub async fn ping_pong(&mut self) {
        self.send_json(&serde_json::json!({"op": "ping"})).await;
        self.next_op("pong", Duration::from_secs(5)).await;
    }

    /// Reads until the server closes; returns the close code (`None` when the
    /// connection ended without a close frame). Text frames before the close
    /// are ignored. Panics when nothing ends within `timeout`.
    pub async fn close_code(&mut self, timeout: Duration) -> Option<u16> {
        self.close_code_counting(timeout).await.0
    }

    /// Like [`close_code`](Self::close_code), also returning how many text
    /// frames came before the close.
    pub async fn close_code_counting(&mut self, timeout: Duration) -> (Option<u16>, usize) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut texts = 0;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => {
                    panic!("connection not closed within {timeout:?} ({texts} text frames read)")
                }
                Ok(None) => return (None, texts),
                Ok(Some(Err(_))) => return (None, texts),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return (frame.map(|f| u16::from(f.code)), texts)
                }
                Ok(Some(Ok(Message::Text(_)))) => texts += 1,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Closes the connection normally (best effort).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }

    async fn next_json_inner(&mut self) -> Result<Value, String> {
        loop {
            match self.ws.next().await {
                None => return Err("connection ended".into()),
                Some(Err(e)) => return Err(format!("WebSocket error: {e}")),
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| format!("frame is not JSON ({e}): {}", text.as_str()))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("connection closed: {frame:?}"))
                }
                Some(Ok(other)) => return Err(format!("unexpected frame: {other:?}")),
            }
        }
    }
}

fn show(frames: &[Value]) -> String {
    const MAX: usize = 20;
    let mut s: Vec<String> = frames
        .iter()
        .rev()
        .take(MAX)
        .rev()
        .map(Value::to_string)
        .collect();
    if frames.len() > MAX {
        s.insert(0, format!("... {} earlier", frames.len() - MAX));
    }
    format!("[{}]", s.join(", "))
}

/// How a [`RawWs`] connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawClose {
    /// The code of the server's close frame, if one came.
    pub code: Option<u16>,
    /// Text frames read before the end.
    pub texts: usize,
    /// Ping frames read before the end.
    pub pings: usize,
    /// How it ended: `close frame`, `eof` or the read error.
    pub ended: String,
}

/// A hand-made WebSocket client: it does the upgrade, may send text frames,
/// and otherwise does nothing. It never answers pings and reads only when
/// told to, so it plays a stalled or dead client.
pub struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Connects to `addr` and upgrades `path`; `recv_buffer` sets a small
    /// socket receive buffer (so a client that stops reading falls behind
    /// sooner). Panics unless the server answers `101`.
    pub async fn connect(
        addr: std::net::SocketAddr,
        path: &str,
        recv_buffer: Option<u32>,
    ) -> RawWs {
        let socket = TcpSocket::new_v4().expect("socket");
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send upgrade");
        let mut buf = Vec::new();
        let head_end = tokio::time::timeout(CONNECT_TIMEOUT, async {
            loop {
                if let Some(i) = find(&buf, b"\r\n\r\n") {
                    return i + 4;
                }
                let mut chunk = [0u8; 1024];
                let n = stream.read(&mut chunk).await.expect("read upgrade answer");
                assert!(
                    n > 0,
                    "connection closed during upgrade: {}",
                    String::from_utf8_lossy(&buf)
                );
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("upgrade answer timed out");
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        buf.drain(..head_end);
        RawWs { stream, buf }
    }

    /// Sends one masked text frame.
    pub async fn send_text(&mut self, text: &str) {
        let frame = client_frame(0x1, text.as_bytes());
        self.stream.write_all(&frame).await.expect("send frame");
    }

    /// Reads exactly `n` text frames (other frames are read and not
    /// answered); panics if they do not come within `timeout`.
    pub async fn read_texts(&mut self, n: usize, timeout: Duration) -> Vec<String> {
        let mut texts = Vec::with_capacity(n);
        let read = tokio::time::timeout(timeout, async {
            while texts.len() < n {
                while texts.len() < n {
                    let Some((opcode, payload)) = take_frame(&mut self.buf) else {
                        break;
                    };
                    match opcode {
                        0x1 => texts.push(String::from_utf8_lossy(&payload).into_owned()),
                        0x8 => panic!(
                            "server closed after {} text frames: {payload:?}",
                            texts.len()
                        ),
                        _ => {}
                    }
                }
                if texts.len() == n {
                    break;
                }
                let mut chunk = vec![0u8; 16 * 1024];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => panic!("connection ended after {} text frames", texts.len()),
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "only {} of {n} text frames within {timeout:?}: {texts:?}",
            texts.len()
        );
        texts
    }

    /// Reads frames until the server closes or `timeout` passes; returns
    /// `None` on timeout (the connection is still open).
    pub async fn read_until_closed(&mut self, timeout: Duration) -> Option<RawClose> {
        let mut end = RawClose {
            code: None,
            texts: 0,
            pings: 0,
            ended: String::new(),
        };
        let result = tokio::time::timeout(timeout, async {
            loop {
                while let Some((opcode, payload)) = take_frame(&mut self.buf) {
                    match opcode {
                        0x1 => end.texts += 1,
                        0x9 => end.pings += 1,
                        0x8 => {
                            end.code = (payload.len() >= 2)
                                .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                            end.ended = "close frame".into();
                            return;
                        }
                        _ => {}
                    }
                }
                let mut chunk = vec![0u8; 64 * 1024];
                match self.stream.read(&mut chunk).await {
                    Ok(0) => {
                        end.ended = "eof".into();
                        return;
                    }
                    Err(e) => {
                        end.ended = format!("read error: {e}");
                        return;
                    }
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        result.ok().map(|()| end)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A masked client frame (FIN set).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Takes one complete (unmasked, server) frame off the front of `buf`.
fn take_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let mask = if masked {
        if buf.len() < at + 4 {
            return None;
        }
        let m = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(m)
    } else {
        None
    };
    if buf.len() < at + len {
        return None;
    }
    let mut payload: Vec<u8> = buf[at..at + len].to_vec();
    if let Some(m) = mask {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= m[i % 4]);
    }
    buf.drain(..at + len);
    Some((opcode, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_parser() {
        for len in [0usize, 5, 125, 126, 70_000] {
            let payload = vec![b'x'; len];
            let mut buf = client_frame(0x1, &payload);
            buf.extend_from_slice(&[0x88, 0x02, 0x0f, 0xa8]);
            let (op, got) = take_frame(&mut buf).unwrap();
            assert_eq!((op, got.len()), (1, len));
            assert_eq!(got, payload);
            let (op, got) = take_frame(&mut buf).unwrap();
            assert_eq!(op, 8);
            assert_eq!(u16::from_be_bytes([got[0], got[1]]), 4008);
            assert!(buf.is_empty());
        }
        assert!(take_frame(&mut vec![0x81, 0x05, b'a']).is_none());
    }
}
