//! Configuration of both processes, from the environment.
//!
//! Every setting is an environment variable (`--help` lists them all, with
//! defaults); command-line flags of the same names exist for convenience.
//! A bad value stops the process at start with one line naming the variable
//! and exit code 64 ([`EXIT_CONFIG`]).
//!
//! - this file: the settings of each process, as typed data;
//! - `values`: parsers and types of single values (durations, URLs, lists);
//! - `parse`: reading the environment and arguments, cross-field checks,
//!   and the list of every variable (for misspelt ones).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use clap::{Args, Parser};

mod parse;
#[cfg(test)]
mod tests;
mod values;

pub use parse::{known_variables, parse, unknown_variables, Checked, ConfigError};
use values::{api_keys, duration, ip_list, kinds, origins, postgres_url, redis_url};
pub use values::{ApiKeys, AuthMode, IpList, KindList, LogFormat, Origins};

/// Exit code for a bad configuration (`EX_CONFIG` is 78, but the contract says 64, `EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;

/// Settings both processes share.
#[derive(Debug, Clone, Args)]
pub struct CommonConfig {
    /// Redis (standalone; redis-cluster:// and redis-sentinel:// where supported).
    #[arg(long, env = "RELAY_REDIS_URL", default_value = "redis://127.0.0.1:6379", value_parser = redis_url)]
    pub redis_url: String,

    /// PostgreSQL for job records; the schema is migrated at start.
    #[arg(long, env = "RELAY_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/relay", value_parser = postgres_url)]
    pub database_url: String,

    /// Events kept per topic for replay.
    #[arg(long, env = "RELAY_HISTORY_SIZE", default_value = "1000", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub history_size: u64,

    /// How long an idle topic's history is kept.
    #[arg(long, env = "RELAY_HISTORY_TTL", default_value = "24h", value_parser = duration)]
    pub history_ttl: Duration,

    /// Drain time on SIGTERM.
    #[arg(long, env = "RELAY_SHUTDOWN_GRACE", default_value = "25s", value_parser = duration)]
    pub shutdown_grace: Duration,

    /// Tracing filter (e.g. `info`, `relay_gateway=debug`).
    #[arg(long = "log", env = "RELAY_LOG", default_value = "info")]
    pub log: String,

    /// `text`, or `json` for one JSON object per line.
    #[arg(long, env = "RELAY_LOG_FORMAT", default_value = "text", value_enum)]
    pub log_format: LogFormat,

    /// Most jobs of one kind one owner may have running at once (0: no
    /// limit); an owner at the limit waits while other owners' jobs run.
    #[arg(long, env = "RELAY_MAX_RUNNING_PER_OWNER", default_value = "0")]
    pub max_running_per_owner: u32,

    /// This instance's name in `/v1/status` and metrics (default: host name and process id).
    #[arg(long, env = "RELAY_INSTANCE_ID")]
    pub instance_id: Option<String>,
}

impl CommonConfig {
    /// The instance name: `RELAY_INSTANCE_ID`, else `<hostname>-<pid>`.
    pub fn instance_id(&self, prefix: &str) -> String {
        if let Some(id) = &self.instance_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("{prefix}-{host}-{}", std::process::id())
    }

    /// Whether the Redis URL names a cluster (sharded pub/sub).
    pub fn redis_cluster(&self) -> bool {
        self.redis_url.starts_with("redis-cluster://")
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            return Err(format!("RELAY_LOG: {e}"));
        }
        Ok(())
    }
}

/// How the gateway authenticates clients (only the gateway sees tokens).
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// `jwt`, or `off` (development only; logged as a warning at start).
    #[arg(long = "auth", env = "RELAY_AUTH", default_value = "jwt", value_enum)]
    pub mode: AuthMode,

    /// HS256 secret for JWT verification.
    #[arg(long, env = "RELAY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// PEM public key for RS256/ES256 JWT verification.
    #[arg(long, env = "RELAY_JWT_PUBLIC_KEY", hide_env_values = true)]
    pub jwt_public_key: Option<String>,

    /// Required `aud` claim of JWTs (not checked when unset).
    #[arg(long, env = "RELAY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Required `iss` claim of JWTs (not checked when unset).
    #[arg(long, env = "RELAY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
}

impl AuthConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.jwt_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err("RELAY_JWT_SECRET: must be at least 16 bytes".into());
        }
        if self.mode == AuthMode::Jwt && self.jwt_secret.is_none() && self.jwt_public_key.is_none()
        {
            return Err("RELAY_AUTH: jwt needs RELAY_JWT_SECRET or RELAY_JWT_PUBLIC_KEY (or set RELAY_AUTH=off for development)".into());
        }
        Ok(())
    }
}

/// Configuration of `relay-gateway`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "relay-gateway",
    version,
    about = "Relay gateway: stateless WebSocket, SSE, long-poll and REST front of Relay"
)]
pub struct GatewayConfig {
    #[command(flatten)]
    pub common: CommonConfig,

    #[command(flatten)]
    pub auth: AuthConfig,

    /// Gateway HTTP/WebSocket address.
    #[arg(long, env = "RELAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Where `GET /metrics` is served (default: on RELAY_LISTEN).
    #[arg(long, env = "RELAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Comma-separated keys for the server API (`X-Api-Key` header); each at least 16 characters.
    #[arg(long, env = "RELAY_API_KEYS", value_parser = api_keys, default_value = "", hide_env_values = true, hide_default_value = true)]
    pub api_keys: ApiKeys,

    /// Largest WebSocket frame or event data accepted, in bytes; larger frames close the socket with 1009.
    #[arg(long, env = "RELAY_MAX_FRAME_BYTES", default_value = "65536", value_parser = clap::value_parser!(u64).range(1024..=16_777_216))]
    pub max_frame_bytes: u64,

    /// Largest HTTP request body accepted, in bytes (uploads excepted).
    #[arg(long, env = "RELAY_MAX_BODY_BYTES", default_value = "1048576", value_parser = clap::value_parser!(u64).range(1024..=268_435_456))]
    pub max_body_bytes: u64,

    /// Topics one WebSocket connection may subscribe to at once.
    #[arg(long, env = "RELAY_MAX_SUBSCRIPTIONS", default_value = "100")]
    pub max_subscriptions: NonZeroUsize,

    /// Frames waiting to be written to one client; a client further behind is closed with 4008.
    #[arg(long, env = "RELAY_SEND_QUEUE", default_value = "1024")]
    pub send_queue: NonZeroUsize,

    /// Interval of WebSocket pings; a connection silent for two intervals is closed.
    #[arg(long, env = "RELAY_HEARTBEAT", default_value = "25s", value_parser = duration)]
    pub heartbeat: Duration,

    /// Most WebSocket, SSE and long-poll clients held at once by this gateway.
    #[arg(long, env = "RELAY_MAX_CONNECTIONS", default_value = "100000")]
    pub max_connections: NonZeroUsize,

    /// WebSocket connections one user (`sub`) may hold on this gateway.
    #[arg(long, env = "RELAY_MAX_CONNECTIONS_PER_USER", default_value = "100")]
    pub max_connections_per_user: NonZeroUsize,

    /// WebSocket connections one client IP address may hold on this gateway.
    #[arg(long, env = "RELAY_MAX_CONNECTIONS_PER_IP", default_value = "10000")]
    pub max_connections_per_ip: NonZeroUsize,

    /// Frames per second one WebSocket connection may send (bursts of twice that); beyond, RATE_LIMIT errors, then a 1008 close.
    #[arg(long, env = "RELAY_WS_MESSAGE_RATE", default_value = "500")]
    pub ws_message_rate: std::num::NonZeroU32,

    /// HTTP API requests per second per client (user, or IP without a token), bursts of twice that; beyond, 429. Requests with an API key are not limited.
    #[arg(long, env = "RELAY_HTTP_RATE", default_value = "100")]
    pub http_rate: std::num::NonZeroU32,

    /// Long-poll requests waiting and SSE streams open at once on this gateway.
    #[arg(long, env = "RELAY_MAX_STREAMS", default_value = "10000")]
    pub max_streams: NonZeroUsize,

    /// Comma-separated origins allowed to open WebSockets and call the HTTP API from browsers (CORS); empty allows any.
    #[arg(long, env = "RELAY_ALLOWED_ORIGINS", default_value = "", value_parser = origins, hide_default_value = true)]
    pub allowed_origins: Origins,

    /// Comma-separated addresses of load balancers whose X-Forwarded-For is trusted for the client address.
    #[arg(long, env = "RELAY_TRUSTED_PROXIES", default_value = "", value_parser = ip_list, hide_default_value = true)]
    pub trusted_proxies: IpList,

    /// Time a client has to send its request headers (slow clients are dropped).
    #[arg(long, env = "RELAY_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub handshake_timeout: Duration,

    /// Topics one poll or SSE request may name.
    #[arg(long, env = "RELAY_MAX_POLL_TOPICS", default_value = "32")]
    pub max_poll_topics: NonZeroUsize,

    /// Largest file accepted by `POST /v1/uploads`, in bytes (streamed to PostgreSQL, never held in memory).
    #[arg(long, env = "RELAY_MAX_UPLOAD_BYTES", default_value = "268435456", value_parser = clap::value_parser!(u64).range(1024..=68_719_476_736))]
    pub max_upload_bytes: u64,
    /// Serve the web console at `/console` (`on` or `off`).
    #[arg(long, env = "RELAY_CONSOLE", default_value = "on", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub console: bool,
}

/// Configuration of `relay-worker`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "relay-worker",
    version,
    about = "Relay worker: runs jobs from the Redis queue and publishes their events"
)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub common: CommonConfig,

    /// Where `GET /metrics` and `GET /healthz` are served.
    #[arg(long, env = "RELAY_METRICS_LISTEN", default_value = "0.0.0.0:9091")]
    pub metrics_listen: SocketAddr,

    /// Jobs one worker runs at once.
    #[arg(long, env = "RELAY_WORKER_CONCURRENCY", default_value = "16")]
    pub concurrency: NonZeroUsize,

    /// Comma-separated job kinds this worker takes (default: all built-in kinds).
    #[arg(long, env = "RELAY_WORKER_KINDS", value_parser = kinds)]
    pub kinds: Option<KindList>,

    /// A running job whose worker stops renewing for this long is taken back and retried.
    #[arg(long, env = "RELAY_JOB_LEASE", default_value = "30s", value_parser = duration)]
    pub job_lease: Duration,
}
