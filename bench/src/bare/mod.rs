//! The bare broadcast server: the fan-out ceiling on this machine, a peer
//! measured in the same sitting as Relay.
//!
//! No Redis, no envelope, no auth, no history: a WebSocket client sends
//! `{"op":"subscribe","id":1,"topic":"..."}` and gets `{"op":"subscribed",...}`
//! back; `POST /v1/publish` (any JSON body with a `"topic"`) sends the body,
//! byte for byte, to every subscriber of that topic, and `POST /v1/broadcast`
//! (`"topics":[...]`) to several. So `relay-bench fanout` and `connections`
//! drive it exactly as they drive a gateway.
//!
//! What a minimal tokio-tungstenite server does, as DESIGN.md's performance
//! facts describe it:
//!
//! - one task per connection, spawned after the upgrade (the handshake's
//!   future is not kept alive beside it), which owns the unsplit socket and
//!   waits on its reads and its topic's [`broadcast`] receiver at once;
//! - one ring per topic ([`broadcast`], [`BareConfig::queue`] slots), so a
//!   publish costs one clone of the frame per subscriber (a reference count)
//!   and no per-connection queue;
//! - batched writes: every frame waiting for a connection is `feed`ed, then
//!   one `flush`;
//! - small buffers: a 1 KiB read buffer and an 8 KiB write buffer (capped at
//!   64 KiB).
//!
//! A subscriber that falls more than [`BareConfig::queue`] frames behind
//! loses the oldest ones (counted in `GET /stats` as `lagged`; the bench
//! client counts them as lost). A connection has one subscription; a second
//! `subscribe` replaces it.
//!
//! # Layout
//!
//! - this file: the hub, the accept loop, the WebSocket session;
//! - [`http`]: the tiny HTTP/1.1 side (publish, broadcast, `/healthz`, `/stats`).

mod http;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// Read buffer of a connection (tungstenite allocates it eagerly).
pub const READ_BUFFER: usize = 1024;
/// Bytes of frames gathered before a write to the socket.
pub const WRITE_BUFFER: usize = 8 * 1024;
/// Largest write buffer before `feed` waits for the socket.
pub const MAX_WRITE_BUFFER: usize = 64 * 1024;
/// Largest incoming WebSocket message (clients send only `subscribe`).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Peeks at a new connection's first bytes before giving up on telling a
/// WebSocket upgrade from an HTTP request (1 ms apart).
const PEEK_TRIES: usize = 1000;

/// Settings of the bare server.
#[derive(Debug, Clone, Copy)]
pub struct BareConfig {
    /// Frames a topic's ring holds; a subscriber further behind loses the oldest.
    pub queue: usize,
}

impl Default for BareConfig {
    fn default() -> Self {
        BareConfig { queue: 1024 }
    }
}

/// Counters served at `GET /stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub published: AtomicU64,
    pub deliveries_offered: AtomicU64,
    pub lagged: AtomicU64,
}

/// Topics and their rings. A topic's entry goes when a publish finds it
/// without subscribers, so the map is bounded by the live subscriptions.
pub struct Hub {
    topics: Mutex<HashMap<Box<str>, broadcast::Sender<Utf8Bytes>>>,
    config: BareConfig,
    pub stats: Stats,
}

impl Hub {
    pub fn new(config: BareConfig) -> Hub {
        Hub {
            topics: Mutex::default(),
            config,
            stats: Stats::default(),
        }
    }

    pub fn subscribe(&self, topic: &str) -> broadcast::Receiver<Utf8Bytes> {
        let mut topics = self.topics.lock().expect("hub lock");
        match topics.get(topic) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(self.config.queue.max(1));
                topics.insert(topic.into(), tx);
                rx
            }
        }
    }

    /// Sends `frame` to the topic's subscribers; returns how many there were.
    pub fn publish(&self, topic: &str, frame: Utf8Bytes) -> usize {
        let tx = {
            let mut topics = self.topics.lock().expect("hub lock");
            match topics.get(topic) {
                Some(tx) if tx.receiver_count() == 0 => {
                    topics.remove(topic);
                    None
                }
                Some(tx) => Some(tx.clone()),
                None => None,
            }
        };
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        let n = tx.and_then(|tx| tx.send(frame).ok()).unwrap_or(0);
        self.stats
            .deliveries_offered
            .fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    pub fn stats_json(&self) -> Value {
        let s = &self.stats;
        json!({
            "connections": s.connections.load(Ordering::Relaxed),
            "topics": self.topics.lock().expect("hub lock").len(),
            "published": s.published.load(Ordering::Relaxed),
            "deliveries_offered": s.deliveries_offered.load(Ordering::Relaxed),
            "lagged": s.lagged.load(Ordering::Relaxed),
            "queue": self.config.queue,
        })
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// Serves on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: BareConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let hub = Arc::new(Hub::new(config));
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: keep serving the rest.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, hub.clone()));
    }
}

/// Tells a WebSocket upgrade (`GET`) from an HTTP request (`POST`, other
/// paths) by the request line, without reading it.
async fn connection(stream: TcpStream, hub: Arc<Hub>) {
    const WS: &[u8] = b"GET /v1/ws";
    let mut head = [0u8; WS.len()];
    // The request line nearly always comes in one segment; wait (briefly,
    // bounded) for enough of it when it does not.
    let mut n = 0;
    for _ in 0..PEEK_TRIES {
        match stream.peek(&mut head).await {
            Ok(0) | Err(_) => return,
            Ok(got) => n = got,
        }
        if n == WS.len() || !WS.starts_with(&head[..n]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    if &head[..n] != WS {
        http::serve(stream, &hub).await;
        return;
    }
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await
    else {
        return;
    };
    // The session gets its own task, so the handshake's state is dropped.
    tokio::spawn(session(ws, hub));
}

/// Waits for an event of the subscribed topic, never when there is none.
async fn next_frame(
    rx: &mut Option<broadcast::Receiver<Utf8Bytes>>,
) -> Result<Utf8Bytes, RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn session(mut ws: WebSocketStream<TcpStream>, hub: Arc<Hub>) {
    hub.stats.connections.fetch_add(1, Ordering::Relaxed);
    let mut rx: Option<broadcast::Receiver<Utf8Bytes>> = None;
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let Some(reply) = on_text(text.as_str(), &hub, &mut rx) else { continue };
                    if ws.send(Message::Text(reply.into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            frame = next_frame(&mut rx) => {
                let first = match frame {
                    Ok(f) => f,
                    Err(RecvError::Lagged(n)) => {
                        hub.stats.lagged.fetch_add(n, Ordering::Relaxed);
                        continue;
                    }
                    Err(RecvError::Closed) => {
                        rx = None;
                        continue;
                    }
                };
                if write_batch(&mut ws, first, rx.as_mut(), &hub).await.is_err() {
                    break;
                }
            }
        }
    }
    hub.stats.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Feeds `first` and every frame already waiting, then flushes once.
async fn write_batch(
    ws: &mut WebSocketStream<TcpStream>,
    first: Utf8Bytes,
    rx: Option<&mut broadcast::Receiver<Utf8Bytes>>,
    hub: &Hub,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.feed(Message::Text(first)).await?;
    if let Some(rx) = rx {
        loop {
            match rx.try_recv() {
                Ok(f) => ws.feed(Message::Text(f)).await?,
                Err(TryRecvError::Lagged(n)) => {
                    hub.stats.lagged.fetch_add(n, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
    }
    ws.flush().await
}

/// Handles a client frame: `subscribe` (replacing any subscription) gets
/// `subscribed`; anything else gets an error frame.
fn on_text(
    text: &str,
    hub: &Hub,
    rx: &mut Option<broadcast::Receiver<Utf8Bytes>>,
) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    // Replies start with their `op`, as Relay's do.
    match (v["op"].as_str(), v["topic"].as_str()) {
        (Some("subscribe"), Some(topic)) => {
            *rx = Some(hub.subscribe(topic));
            Some(format!(
                r#"{{"op":"subscribed","id":{id},"topic":{},"position":"0-0","epoch":"","replayed":0,"recovered":true}}"#,
                Value::from(topic)
            ))
        }
        (Some("ping"), _) => Some(format!(r#"{{"op":"pong","id":{id}}}"#)),
        _ => Some(format!(
            r#"{{"op":"error","id":{id},"error":{{"code":"BAD_REQUEST","message":"only subscribe and ping"}}}}"#
        )),
    }
}
