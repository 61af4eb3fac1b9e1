//! Parsers and types of single configuration values.

use std::time::Duration;

use clap::ValueEnum;

pub(super) fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (use e.g. 500ms, 30s, 24h)"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

pub(super) fn redis_url(s: &str) -> Result<String, String> {
    let ok = ["redis://", "redis-cluster://", "redis-sentinel://"]
        .iter()
        .any(|p| s.starts_with(p));
    if !ok {
        return Err("must start with redis://, redis-cluster:// or redis-sentinel://".into());
    }
    fred::types::config::Config::from_url(s).map_err(|e| e.details().to_string())?;
    Ok(s.to_string())
}

pub(super) fn postgres_url(s: &str) -> Result<String, String> {
    if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
        return Err("must start with postgres:// or postgresql://".into());
    }
    Ok(s.to_string())
}

pub(super) fn api_keys(s: &str) -> Result<ApiKeys, String> {
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

pub(super) fn kinds(s: &str) -> Result<KindList, String> {
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

pub(super) fn origins(s: &str) -> Result<Origins, String> {
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

pub(super) fn ip_list(s: &str) -> Result<IpList, String> {
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
