//! The event bus: publishing events and reading topic history, on Redis.
//!
//! A publish is one atomic script ([`PUBLISH_LUA`]): it appends the event to
//! the topic's stream (trimmed to the history size, expiring after the
//! history TTL), keeps the topic's epoch, and publishes the finished event
//! frame on the topic's channel. The stream id is the event id.

use std::time::Duration;

use bytes::Bytes;
use fred::prelude::*;
use fred::types::scripts::Script;
use serde_json::value::RawValue;

use crate::event::{Since, StreamId};
use crate::keys;
use crate::topic::Topic;

const PUBLISH_LUA: &str = include_str!("lua/publish.lua");
const HISTORY_LUA: &str = include_str!("lua/history.lua");

/// Longest event `type` accepted.
pub const MAX_TYPE_LEN: usize = 128;

/// What went wrong talking to the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Redis could not be reached or did not answer in time.
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with something the bus did not expect.
    #[error("redis error: {0}")]
    Redis(String),
    /// The event type is empty or too long.
    #[error("event type must be 1..={MAX_TYPE_LEN} characters")]
    BadType,
}

impl BusError {
    /// Whether the caller should answer `UNAVAILABLE` (retryable) rather than a server error.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, BusError::Unavailable(_))
    }
}

impl From<fred::error::Error> for BusError {
    fn from(e: fred::error::Error) -> Self {
        use fred::error::ErrorKind as K;
        match e.kind() {
            K::IO | K::Timeout | K::Canceled | K::Backpressure | K::Cluster | K::Routing => {
                BusError::Unavailable(e.to_string())
            }
            _ => BusError::Redis(e.to_string()),
        }
    }
}

/// Settings of the bus, from the configuration.
#[derive(Debug, Clone)]
pub struct BusSettings {
    /// Events kept per topic (`RELAY_HISTORY_SIZE`).
    pub history_size: u64,
    /// How long an idle topic's history is kept (`RELAY_HISTORY_TTL`).
    pub history_ttl: Duration,
    /// Use sharded pub/sub (`SPUBLISH`), for Redis Cluster.
    pub sharded: bool,
}

impl BusSettings {
    /// The settings `config` names.
    pub fn of(config: &crate::config::CommonConfig) -> Self {
        Self {
            history_size: config.history_size,
            history_ttl: config.history_ttl,
            sharded: config.redis_cluster(),
        }
    }
}

/// An accepted event's id and the epoch of its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: StreamId,
    pub epoch: String,
}

/// One event as kept in a topic's stream.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: StreamId,
    /// The type, as a JSON string literal.
    pub type_json: Bytes,
    /// The data, as JSON text.
    pub data: Bytes,
}

impl StoredEvent {
    /// Writes this event's frame (see [`crate::event::write_frame`]).
    pub fn write_frame(&self, out: &mut String, topic: &str) {
        let t = std::str::from_utf8(&self.type_json).unwrap_or("\"\"");
        let d = std::str::from_utf8(&self.data).unwrap_or("null");
        crate::event::write_frame(out, topic, self.id, t, d);
    }
}

impl StoredEvent {
    /// Writes this event's object for polling and SSE (see [`crate::event::write_event`]).
    pub fn write_event(&self, out: &mut String, topic: &str) {
        let t = std::str::from_utf8(&self.type_json).unwrap_or("\"\"");
        let d = std::str::from_utf8(&self.data).unwrap_or("null");
        crate::event::write_event(out, topic, self.id, t, d);
    }
}

/// Where a topic's history stood when a reader read it.
#[derive(Debug, Clone)]
pub struct HistoryInfo {
    /// The topic's current epoch.
    pub epoch: String,
    /// The topic's latest event id (`0-0` for an empty topic).
    pub last: StreamId,
    /// The greatest id ever trimmed or deleted from the stream.
    pub max_deleted: StreamId,
    /// The epoch the client named is not the current one.
    pub epoch_changed: bool,
    /// More events were wanted than a replay holds; only the newest were read.
    pub truncated: bool,
}

impl HistoryInfo {
    /// Whether a reader that asked for the history after `since` missed
    /// nothing: the epoch it knew holds, the read was not cut short, and no
    /// event after `since` was trimmed. The one rule for `recovered`, on
    /// every transport.
    pub fn recovered(&self, since: Option<Since>) -> bool {
        let trimmed = since.is_some_and(|s| self.max_deleted >= s.first_wanted());
        !self.epoch_changed && !self.truncated && !trimmed
    }
}

/// What a topic's history holds after a position.
#[derive(Debug, Clone)]
pub struct History {
    pub info: HistoryInfo,
    /// Retained events after the position, oldest first.
    pub events: Vec<StoredEvent>,
}

/// Handle to the bus; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    client: Client,
    settings: BusSettings,
    publish: Script,
    history: Script,
}

impl Bus {
    pub fn new(client: Client, settings: BusSettings) -> Self {
        Self {
            client,
            settings,
            publish: Script::from_lua(PUBLISH_LUA),
            history: Script::from_lua(HISTORY_LUA),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn settings(&self) -> &BusSettings {
        &self.settings
    }

    /// Whether the Redis connection is up right now (to fail fast when it is not).
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    fn ttl_ms(&self) -> u64 {
        self.settings.history_ttl.as_millis().max(1) as u64
    }

    /// Publishes one event to a topic; returns its id and the topic's epoch.
    pub async fn publish(
        &self,
        topic: &Topic,
        kind: &str,
        data: &RawValue,
    ) -> Result<Published, BusError> {
        self.publish_with(topic, kind, data, None)
            .await
            .map(|(p, _)| p)
    }

    /// Publishes one event to a topic unless an event with the same
    /// `marker` was published to it before (within the history TTL): the
    /// check and the publish are one atomic step, so callers racing to
    /// publish the same event (a writer and a sweep) publish it once.
    /// Returns the event's id (the first one's for a repeat) and whether
    /// this call published it.
    pub async fn publish_once(
        &self,
        topic: &Topic,
        kind: &str,
        data: &RawValue,
        marker: &str,
    ) -> Result<(Published, bool), BusError> {
        self.publish_with(topic, kind, data, Some(marker)).await
    }

    async fn publish_with(
        &self,
        topic: &Topic,
        kind: &str,
        data: &RawValue,
        marker: Option<&str>,
    ) -> Result<(Published, bool), BusError> {
        if kind.is_empty() || kind.len() > MAX_TYPE_LEN {
            return Err(BusError::BadType);
        }
        if !self.is_connected() {
            return Err(BusError::Unavailable("not connected".into()));
        }
        let type_json = serde_json::to_string(kind).map_err(|_| BusError::BadType)?;
        let op = if self.settings.sharded {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let mut keys: Vec<String> = keys::topic_keys(topic).into();
        if let Some(m) = marker {
            keys.push(keys::once(topic.as_str(), m));
        }
        let args: Vec<Value> = vec![
            topic.as_str().into(),
            type_json.into(),
            data.get().into(),
            (self.settings.history_size as i64).into(),
            (self.ttl_ms() as i64).into(),
            new_epoch().into(),
            op.into(),
        ];
        let (id, epoch, fresh): (String, String, i64) = self
            .publish
            .evalsha_with_reload(&self.client, keys, args)
            .await?;
        let id = id
            .parse()
            .map_err(|_| BusError::Redis(format!("unexpected stream id {id}")))?;
        Ok((Published { id, epoch }, fresh == 1))
    }

    /// Reads a topic's history after `since` (or only its position when
    /// `since` is `None`), naming the epoch the reader knows, if any.
    pub async fn history(
        &self,
        topic: &Topic,
        since: Option<Since>,
        known_epoch: Option<&str>,
        limit: usize,
    ) -> Result<History, BusError> {
        if !self.is_connected() {
            return Err(BusError::Unavailable("not connected".into()));
        }
        let first = since
            .map(|s| s.first_wanted().to_string())
            .unwrap_or_default();
        let t = topic.as_str();
        let keys = vec![keys::stream(t), keys::epoch(t), keys::trimmed(t)];
        let args: Vec<Value> = vec![
            first.into(),
            (limit.max(1) as i64).into(),
            new_epoch().into(),
            (self.ttl_ms() as i64).into(),
            known_epoch.unwrap_or("").into(),
        ];
        let value: Value = self
            .history
            .evalsha_with_reload(&self.client, keys, args)
            .await?;
        parse_history(value).ok_or_else(|| BusError::Redis("unexpected history reply".into()))
    }
}

/// A fresh random epoch name: 12 characters of `[0-9a-z]`.
pub fn new_epoch() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn value_string(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_string()),
        Value::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

fn value_bytes(v: Value) -> Option<Bytes> {
    match v {
        Value::String(s) => Some(s.into_inner()),
        Value::Bytes(b) => Some(b),
        _ => None,
    }
}

fn parse_history(value: Value) -> Option<History> {
    let Value::Array(parts) = value else {
        return None;
    };
    let mut parts = parts.into_iter();
    let epoch = value_string(parts.next()?)?;
    let last = value_string(parts.next()?)?.parse().ok()?;
    let max_deleted: StreamId = value_string(parts.next()?)?.parse().ok()?;
    let epoch_changed = matches!(parts.next()?, Value::Integer(1));
    let truncated = matches!(parts.next()?, Value::Integer(1));
    let entries = match parts.next()? {
        Value::Array(entries) => entries,
        Value::Null => Vec::new(),
        _ => return None,
    };
    let mut events = Vec::with_capacity(entries.len());
    for entry in entries {
        events.push(parse_entry(entry)?);
    }
    let trimmed: StreamId = match parts.next() {
        Some(v) => value_string(v)?.parse().ok()?,
        None => StreamId::ZERO,
    };
    let max_deleted = max_deleted.max(trimmed);
    Some(History {
        info: HistoryInfo {
            epoch,
            last,
            max_deleted,
            epoch_changed,
            truncated,
        },
        events,
    })
}

/// Parses one `XRANGE` entry: `[id, [field, value, ...]]`.
pub fn parse_entry(entry: Value) -> Option<StoredEvent> {
    let Value::Array(pair) = entry else {
        return None;
    };
    let mut pair = pair.into_iter();
    let id = value_string(pair.next()?)?.parse().ok()?;
    let Value::Array(fields) = pair.next()? else {
        return None;
    };
    let (mut type_json, mut data) = (None, None);
    let mut fields = fields.into_iter();
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        match value_string(k).as_deref() {
            Some("t") => type_json = value_bytes(v),
            Some("d") => data = value_bytes(v),
            _ => {}
        }
    }
    Some(StoredEvent {
        id,
        type_json: type_json?,
        data: data?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_random_and_well_formed() {
        let a = new_epoch();
        assert_eq!(a.len(), 12);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, new_epoch());
    }

    #[test]
    fn recovered_needs_the_epoch_and_nothing_trimmed_after_since() {
        let h = HistoryInfo {
            epoch: "e".into(),
            last: StreamId::new(10, 0),
            max_deleted: StreamId::new(5, 0),
            epoch_changed: false,
            truncated: false,
        };
        assert!(h.recovered(Some(Since::Id(StreamId::new(5, 0)))));
        assert!(!h.recovered(Some(Since::Id(StreamId::new(4, 9)))));
        assert!(h.recovered(Some(Since::Ts(5))));
        assert!(!h.recovered(Some(Since::Ts(4))));
        assert!(h.recovered(None));
        let changed = HistoryInfo {
            epoch_changed: true,
            ..h
        };
        assert!(!changed.recovered(Some(Since::Id(StreamId::new(9, 0)))));
    }
}
