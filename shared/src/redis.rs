//! Building Redis clients with the reconnect and timeout policy Relay needs:
//! fail fast while Redis is away, reconnect forever in the background.

use std::time::Duration;

use fred::prelude::*;
use fred::types::config::{Config, ConnectionConfig, PerformanceConfig, ReconnectPolicy};

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

/// Starts connecting a client and waits up to `wait` for the first connection;
/// the client keeps trying in the background either way.
pub async fn connect(client: &Client, wait: Duration) -> bool {
    let _task = client.connect();
    tokio::time::timeout(wait, client.wait_for_connect())
        .await
        .is_ok_and(|r| r.is_ok())
}
