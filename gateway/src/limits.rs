//! Named limits on what one client may hold or send. Each refusal is
//! counted in `relay_gateway_limit_hits_total{limit=...}`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use relay_shared::config::GatewayConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics as m;

/// Who holds connections: a user or an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Holder {
    User(Arc<str>),
    Ip(IpAddr),
}

/// The gateway's limits.
pub struct Limits {
    per_user: Option<usize>,
    per_ip: usize,
    held: Mutex<HashMap<Holder, usize>>,
    http: DefaultKeyedRateLimiter<String>,
    streams: Arc<Semaphore>,
    ws_quota: Quota,
    ws_rate: u32,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("per_user", &self.per_user)
            .field("per_ip", &self.per_ip)
            .finish()
    }
}

fn burst(rate: NonZeroU32) -> NonZeroU32 {
    rate.saturating_mul(NonZeroU32::new(2).unwrap())
}

impl Limits {
    /// Limits from the configuration; `per_user` is off when every client is
    /// the same anonymous user (`RELAY_AUTH=off`).
    pub fn new(config: &GatewayConfig, per_user: bool) -> Self {
        Self {
            per_user: per_user.then_some(config.max_connections_per_user.get()),
            per_ip: config.max_connections_per_ip.get(),
            held: Mutex::new(HashMap::new()),
            http: RateLimiter::keyed(
                Quota::per_second(config.http_rate).allow_burst(burst(config.http_rate)),
            ),
            streams: Arc::new(Semaphore::new(config.max_streams.get())),
            ws_quota: Quota::per_second(config.ws_message_rate)
                .allow_burst(burst(config.ws_message_rate)),
            ws_rate: config.ws_message_rate.get(),
        }
    }

    /// Takes a connection slot for `user` from `ip`, if both are under their limits.
    pub fn admit_conn(
        self: &Arc<Self>,
        user: &Arc<str>,
        ip: Option<IpAddr>,
    ) -> Result<ConnSlot, &'static str> {
        let mut held = self.held.lock().unwrap();
        let user_key = self.per_user.map(|_| Holder::User(user.clone()));
        if let (Some(max), Some(k)) = (self.per_user, &user_key) {
            if held.get(k).copied().unwrap_or(0) >= max {
                m::limit_hit("connections_per_user");
                return Err("too many connections for this user");
            }
        }
        let ip_key = ip.map(Holder::Ip);
        if let Some(k) = &ip_key {
            if held.get(k).copied().unwrap_or(0) >= self.per_ip {
                m::limit_hit("connections_per_ip");
                return Err("too many connections from this address");
            }
        }
        for k in user_key.iter().chain(ip_key.iter()) {
            *held.entry(k.clone()).or_insert(0) += 1;
        }
        Ok(ConnSlot {
            limits: self.clone(),
            keys: user_key.into_iter().chain(ip_key).collect(),
        })
    }

    /// A rate limiter for one WebSocket connection's frames.
    pub fn ws_limiter(&self) -> WsRate {
        WsRate {
            limiter: RateLimiter::direct(self.ws_quota),
            refused: 0,
            window: Instant::now(),
            max_refused: self.ws_rate.max(10),
        }
    }

    /// Checks one HTTP request of `client`; on refusal, the seconds to wait.
    pub fn check_http(&self, client: &str) -> Result<(), u64> {
        match self.http.check_key(&client.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                m::limit_hit("http_rate");
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(wait.as_secs() + 1)
            }
        }
    }

    /// Forgets idle HTTP clients (call now and then; keeps the map bounded).
    pub fn forget_idle(&self) {
        self.http.retain_recent();
        self.http.shrink_to_fit();
    }

    /// A place for one waiting long-poll or SSE stream.
    pub fn stream_permit(&self) -> Option<OwnedSemaphorePermit> {
        let p = self.streams.clone().try_acquire_owned().ok();
        if p.is_none() {
            m::limit_hit("streams");
        }
        p
    }
}

/// One held connection; released on drop.
pub struct ConnSlot {
    limits: Arc<Limits>,
    keys: Vec<Holder>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut held = self.limits.held.lock().unwrap();
        for k in &self.keys {
            if let Some(n) = held.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    held.remove(k);
                }
            }
        }
    }
}

/// What to do with a client frame under the rate limit.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Refuse this frame with `RATE_LIMIT`.
    Refuse,
    /// Refused too often: close with 1008.
    Close,
}

/// One connection's frame rate limit: a token bucket, plus a count of
/// refusals over ten seconds that turns a flood into a 1008 close.
pub struct WsRate {
    limiter: DefaultDirectRateLimiter,
    refused: u32,
    window: Instant,
    max_refused: u32,
}

impl WsRate {
    pub fn check(&mut self) -> Verdict {
        if self.limiter.check().is_ok() {
            return Verdict::Accept;
        }
        m::limit_hit("ws_message_rate");
        if self.window.elapsed() > Duration::from_secs(10) {
            self.window = Instant::now();
            self.refused = 0;
        }
        self.refused += 1;
        if self.refused > self.max_refused {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}
