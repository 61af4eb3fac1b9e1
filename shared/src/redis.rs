//! Building Redis clients with the reconnect and timeout policy Relay needs:
//! fail fast while Redis is away, reconnect forever in the background.

use std::time::Duration;

use fred::prelude::*;
use fred::types::config::{Config, ConnectionConfig, PerformanceConfig, ReconnectPolicy};

use crate::bus::{Bus, BusSettings};
use crate::config::CommonConfig;

/// Commands that get no answer within this time fail (Redis is taken as unavailable).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Pub/sub messages a subscriber may have buffered before the gateway reads them.
pub const PUBSUB_BUFFER: usize = 65_536;

fn builder(url: &str) -> Result<Builder, Error> {
    let config = Config::from_url(url)?;
    let mut builder = Builder::from_config(Config {
        fail_fast: false,
        ..config
    });
    builder
        .with_connection_config(|c: &mut ConnectionConfig| {
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = Duration::from_secs(2);
            c.max_command_attempts = 1;
            c.tcp = fred::types::config::TcpConfig {
                nodelay: Some(true),
                ..Default::default()
            };
        })
        .with_performance_config(|p: &mut PerformanceConfig| {
            p.default_command_timeout = COMMAND_TIMEOUT;
            p.broadcast_channel_capacity = PUBSUB_BUFFER;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2));
    Ok(builder)
}

/// A client for commands, connecting in the background.
pub fn client(url: &str) -> Result<Client, Error> {
    builder(url)?.build()
}

/// A client for pub/sub subscriptions (one per gateway).
pub fn subscriber(url: &str) -> Result<Client, Error> {
    builder(url)?.build()
}

/// How long a process waits at start for its first Redis connection.
pub const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(2);

/// The Redis connections of one process: the bus (on the command client)
/// and the pub/sub subscriber.
#[derive(Clone)]
pub struct Redis {
    pub bus: Bus,
    pub subscriber: Client,
}

impl Redis {
    /// The command client (the bus's).
    pub fn client(&self) -> &Client {
        self.bus.client()
    }
}

/// Builds both clients and the bus from `RELAY_REDIS_URL` and the history
/// settings, and waits up to [`FIRST_CONNECT_WAIT`] for them to connect;
/// while Redis is away they keep trying in the background (logged once).
/// Fails only on an unusable URL.
pub async fn connect(common: &CommonConfig) -> Result<Redis, Error> {
    let client = client(&common.redis_url)?;
    let subscriber = subscriber(&common.redis_url)?;
    let (up, sub_up) = tokio::join!(
        connect_within(&client, FIRST_CONNECT_WAIT),
        connect_within(&subscriber, FIRST_CONNECT_WAIT),
    );
    if !(up && sub_up) {
        tracing::warn!(url = %common.redis_url, "redis is not reachable yet; retrying in the background");
    }
    let bus = Bus::new(client, BusSettings::of(common));
    Ok(Redis { bus, subscriber })
}

/// Starts connecting a client and waits up to `wait` for the first connection;
/// the client keeps trying in the background either way.
pub async fn connect_within(client: &Client, wait: Duration) -> bool {
    let _task = client.connect();
    tokio::time::timeout(wait, client.wait_for_connect())
        .await
        .is_ok_and(|r| r.is_ok())
}
