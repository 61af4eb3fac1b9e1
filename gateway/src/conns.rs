//! Every open WebSocket connection, and the one task that keeps them all:
//! heartbeat pings, idle closes, token expiry and the drain.
//!
//! A connection's writer then waits on one thing in the common case, its
//! queue (and its close signal), instead of a ticker, an expiry timer and the
//! gateway's drain token per connection: fewer wake-up sources on the
//! fan-out path, less memory per connection, and no shared token that every
//! writer polls on every frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay_shared::protocol::CloseReason;
use tokio_util::sync::CancellationToken;

use crate::hub::{ConnCtl, Outbound};

/// How often connections are checked; also the precision of token expiry.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Shards of the registry, so registering never waits long for a sweep.
const SHARDS: usize = 16;

struct Entry {
    ctl: Arc<ConnCtl>,
    /// When the token expires, in ms since `base`.
    expires: Option<u64>,
    /// When the next ping is due, in ms since `base`.
    next_ping: u64,
}

/// The registry of open WebSocket connections; cheap to clone.
#[derive(Clone)]
pub struct Conns {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<HashMap<u64, Entry>>]>,
    base: Instant,
    heartbeat_ms: u64,
    draining: CancellationToken,
}

/// Removes a connection from the registry when dropped.
pub struct Registered {
    conns: Conns,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conns.shard(self.id).lock().unwrap().remove(&self.id);
    }
}

impl Conns {
    pub fn new(heartbeat: Duration, draining: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                base: Instant::now(),
                heartbeat_ms: heartbeat.as_millis().max(1) as u64,
                draining,
            }),
        }
    }

    /// Milliseconds since the registry was created (the clock of
    /// [`ConnCtl::touch`]).
    pub fn now_ms(&self) -> u64 {
        self.inner.base.elapsed().as_millis() as u64
    }

    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, Entry>> {
        &self.inner.shards[id as usize % SHARDS]
    }

    /// Registers a connection until the returned guard is dropped (pings go
    /// to its queue); `expires_in` is its token's remaining life.
    pub fn register(&self, id: u64, ctl: Arc<ConnCtl>, expires_in: Option<Duration>) -> Registered {
        let now = self.now_ms();
        ctl.touch(now);
        if expires_in.is_some_and(|d| d.is_zero()) {
            ctl.close(CloseReason::TokenExpired);
        }
        let entry = Entry {
            ctl: ctl.clone(),
            expires: expires_in.map(|d| now.saturating_add(d.as_millis() as u64)),
            next_ping: now + self.inner.heartbeat_ms,
        };
        self.shard(id).lock().unwrap().insert(id, entry);
        // A drain that started while this connection was being set up.
        if self.inner.draining.is_cancelled() {
            ctl.close(CloseReason::Draining);
        }
        Registered {
            conns: self.clone(),
            id,
        }
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.lock().unwrap().len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the connections until `stop`: pings each one every heartbeat,
    /// closes those silent for two intervals (1001) or whose token expired
    /// (4001), and closes every one with 4000 when the drain starts.
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let draining = self.inner.draining.clone();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = draining.cancelled() => {
                    self.close_all(CloseReason::Draining);
                    // Connections registered later are closed as they register.
                    stop.cancelled().await;
                    return;
                }
                _ = tick.tick() => self.sweep(),
            }
        }
    }

    fn close_all(&self, reason: CloseReason) {
        for shard in self.inner.shards.iter() {
            for entry in shard.lock().unwrap().values() {
                entry.ctl.close(reason);
            }
        }
    }

    fn sweep(&self) {
        let now = self.now_ms();
        let heartbeat = self.inner.heartbeat_ms;
        for shard in self.inner.shards.iter() {
            for entry in shard.lock().unwrap().values_mut() {
                if entry.expires.is_some_and(|at| now >= at) {
                    entry.ctl.close(CloseReason::TokenExpired);
                } else if now.saturating_sub(entry.ctl.last_seen()) > 2 * heartbeat {
                    entry.ctl.close(CloseReason::Idle);
                } else if now >= entry.next_ping {
                    entry.next_ping = now + heartbeat;
                    // A full queue means the writer is busy or the client is
                    // behind (the hub sheds it); the ping can wait a round.
                    let _ = entry.ctl.push(Outbound::Ping);
                }
            }
        }
    }
}
