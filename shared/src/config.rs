//! Configuration of both processes, from the environment.
//!
//! Every setting is an environment variable (`--help` lists them all, with
//! defaults); command-line flags of the same names exist for convenience.
//! A bad value stops the process at start with one line naming the variable
//! and exit code 64 ([`EXIT_CONFIG`]).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, ValueEnum};

/// Exit code for a bad configuration (`EX_CONFIG` is 78, but the contract says 64, `EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;

fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (use e.g. 500ms, 30s, 24h)"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

fn redis_url(s: &str) -> Result<String, String> {
    let ok = ["redis://", "redis-cluster://", "redis-sentinel://"]
        .iter()
        .any(|p| s.starts_with(p));
    if !ok {
        return Err("must start with redis://, redis-cluster:// or redis-sentinel://".into());
    }
    fred::types::config::Config::from_url(s).map_err(|e| e.details().to_string())?;
    Ok(s.to_string())
}

fn postgres_url(s: &str) -> Result<String, String> {
    if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
        return Err("must start with postgres:// or postgresql://".into());
    }
    Ok(s.to_string())
}

fn api_keys(s: &str) -> Result<ApiKeys, String> {
    let keys: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(String::from)
        .collect();
    if keys.iter().any(|k| k.len() < 16) {
        return Err("every key must be at least 16 characters".into());
    }
    Ok(ApiKeys(keys))
}

fn kinds(s: &str) -> Result<KindList, String> {
    let kinds: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(String::from)
        .collect();
    if kinds.is_empty() {
        return Err("names no kind".into());
    }
    Ok(KindList(kinds))
}

fn origins(s: &str) -> Result<Origins, String> {
    let list: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| o.trim_end_matches('/').to_string())
        .collect();
    for o in &list {
        if !(o.starts_with("http://") || o.starts_with("https://"))
            || o[o.find("://").unwrap_or(0) + 3..].contains('/')
        {
            return Err(format!(
                "{o:?} is not an origin like https://app.example.com"
            ));
        }
    }
    Ok(Origins(list))
}

fn ip_list(s: &str) -> Result<IpList, String> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| a.parse().map_err(|_| format!("{a:?} is not an IP address")))
        .collect::<Result<Vec<_>, _>>()
        .map(IpList)
}

/// A list of IP addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpList(pub Vec<std::net::IpAddr>);

/// Allowed browser origins; empty allows any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(pub Vec<String>);

impl Origins {
    pub fn allows(&self, origin: &str) -> bool {
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin.trim_end_matches('/')))
    }
}

/// API keys for the server API; never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys(pub Vec<String>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

/// A list of job kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindList(pub Vec<String>);

/// How clients are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// JWT bearer tokens (HS256 with a secret, RS256/ES256 with a public key).
    Jwt,
    /// No authentication: every client is an admin named `anonymous` (development only).
    Off,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings both processes share.
#[derive(Debug, Clone, Args)]
pub struct CommonConfig {
    /// Redis (standalone; redis-cluster:// and redis-sentinel:// where supported).
    #[arg(long, env = "RELAY_REDIS_URL", default_value = "redis://127.0.0.1:6379", value_parser = redis_url)]
    pub redis_url: String,

    /// PostgreSQL for job records; the schema is migrated at start.
    #[arg(long, env = "RELAY_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/relay", value_parser = postgres_url)]
    pub database_url: String,

    /// `jwt`, or `off` (development only; logged as a warning at start).
    #[arg(long, env = "RELAY_AUTH", default_value = "jwt", value_enum)]
    pub auth: AuthMode,

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

    fn check(&self) -> Result<(), String> {
        if self.jwt_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err("RELAY_JWT_SECRET: must be at least 16 bytes".into());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            return Err(format!("RELAY_LOG: {e}"));
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

/// Why the configuration was refused, or help to print.
#[derive(Debug)]
pub enum ConfigError {
    /// `--help` or `--version`: print this and exit 0.
    Info(String),
    /// A bad value: one line naming the variable; exit [`EXIT_CONFIG`].
    Invalid(String),
}

/// Parses a configuration from the environment and the given arguments.
pub fn parse<C, I, T>(args: I) -> Result<C, ConfigError>
where
    C: Parser + Checked,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = C::command();
    let matches = match cmd.try_get_matches_from_mut(args) {
        Ok(m) => m,
        Err(e) => return Err(clap_error(&cmd, e)),
    };
    let config = C::from_arg_matches(&matches).map_err(|e| clap_error(&cmd, e))?;
    config.check().map_err(ConfigError::Invalid)?;
    Ok(config)
}

/// Final checks across fields, beyond what each field's parser does.
pub trait Checked {
    fn check(&self) -> Result<(), String>;
}

impl Checked for GatewayConfig {
    fn check(&self) -> Result<(), String> {
        self.common.check()?;
        // Only the gateway verifies tokens; workers never see one.
        let c = &self.common;
        if c.auth == AuthMode::Jwt && c.jwt_secret.is_none() && c.jwt_public_key.is_none() {
            return Err("RELAY_AUTH: jwt needs RELAY_JWT_SECRET or RELAY_JWT_PUBLIC_KEY (or set RELAY_AUTH=off for development)".into());
        }
        Ok(())
    }
}

impl Checked for WorkerConfig {
    fn check(&self) -> Result<(), String> {
        self.common.check()?;
        if self.job_lease < Duration::from_secs(1) {
            return Err("RELAY_JOB_LEASE: must be at least 1s".into());
        }
        Ok(())
    }
}

fn clap_error(cmd: &clap::Command, e: clap::Error) -> ConfigError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return ConfigError::Info(e.render().to_string());
    }
    let rendered = e.render().to_string();
    let mut line = rendered
        .lines()
        .next()
        .unwrap_or("invalid configuration")
        .trim_start_matches("error: ")
        .to_string();
    // Name the environment variable rather than the flag.
    if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
        let long = arg
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_start_matches("--");
        if let Some(env) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_env())
        {
            line = line.replace(&format!("'{arg}'"), &env.to_string_lossy());
        }
    }
    ConfigError::Invalid(line)
}

/// Every variable either process reads, for spotting misspelt ones.
pub fn known_variables() -> Vec<String> {
    let mut names: Vec<String> = GatewayConfig::command()
        .get_arguments()
        .chain(WorkerConfig::command().get_arguments())
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `RELAY_*` variables in the environment that neither process reads.
pub fn unknown_variables() -> Vec<String> {
    let known = known_variables();
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("RELAY_") && !known.contains(k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(args: &[&str]) -> Result<GatewayConfig, ConfigError> {
        let mut all = vec!["relay-gateway", "--auth", "off"];
        all.extend_from_slice(args);
        parse::<GatewayConfig, _, _>(all)
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = gateway(&[]).unwrap();
        assert_eq!(c.common.history_size, 1000);
        assert_eq!(c.common.history_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(c.common.shutdown_grace, Duration::from_secs(25));
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.max_frame_bytes, 65536);
    }

    #[test]
    fn bad_values_name_the_variable_in_one_line() {
        let Err(ConfigError::Invalid(line)) = gateway(&["--history-size", "lots"]) else {
            panic!()
        };
        assert!(line.contains("RELAY_HISTORY_SIZE"), "{line}");
        assert!(!line.contains('\n'));
        let Err(ConfigError::Invalid(line)) = gateway(&["--history-ttl", "forever"]) else {
            panic!()
        };
        assert!(line.contains("RELAY_HISTORY_TTL"), "{line}");
        let Err(ConfigError::Invalid(line)) = gateway(&["--redis-url", "http://x"]) else {
            panic!()
        };
        assert!(line.contains("RELAY_REDIS_URL"), "{line}");
    }

    #[test]
    fn workers_need_no_jwt_settings() {
        let c = parse::<WorkerConfig, _, _>(["relay-worker"]);
        assert!(c.is_ok(), "{:?}", c.err());
    }

    #[test]
    fn jwt_mode_needs_a_key() {
        let r = parse::<GatewayConfig, _, _>(["relay-gateway", "--auth", "jwt"]);
        let Err(ConfigError::Invalid(line)) = r else {
            panic!()
        };
        assert!(line.contains("RELAY_JWT_SECRET"));
    }

    #[test]
    fn readme_table_matches_the_code() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let documented: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `RELAY_"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let known = known_variables();
        for v in &known {
            assert!(
                documented.contains(&v.trim_start_matches("RELAY_")),
                "{v} is not in the README's table"
            );
        }
        for d in documented {
            assert!(
                known.contains(&format!("RELAY_{d}")),
                "README documents RELAY_{d}, which no process reads"
            );
        }
    }

    #[test]
    fn help_lists_every_variable() {
        let help = GatewayConfig::command().render_long_help().to_string();
        for v in [
            "RELAY_REDIS_URL",
            "RELAY_LISTEN",
            "RELAY_HISTORY_SIZE",
            "RELAY_SHUTDOWN_GRACE",
            "RELAY_LOG_FORMAT",
        ] {
            assert!(help.contains(v), "{v} missing from --help");
        }
        let help = WorkerConfig::command().render_long_help().to_string();
        for v in [
            "RELAY_WORKER_CONCURRENCY",
            "RELAY_WORKER_KINDS",
            "RELAY_JOB_LEASE",
            "RELAY_METRICS_LISTEN",
        ] {
            assert!(help.contains(v), "{v} missing from --help");
        }
    }
}
