//! Event ids and the one wire format of an event.
//!
//! An event's id is its Redis stream id (`<ms>-<seq>`), so it is strictly
//! increasing within a topic and its millisecond part is the event's `ts`.
//!
//! An event frame is built exactly once: by the publish script in Redis for
//! live delivery, or by [`write_frame`] for replay, and both produce the same
//! bytes. The frame starts with `{"op":"event","id":"<id>",` so a gateway can
//! read the id of a live frame without parsing the JSON ([`frame_id`]).

use std::fmt;
use std::str::FromStr;

/// A Redis stream id: `<milliseconds>-<sequence>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an event id (expected <ms>-<seq> or <ms>)")]
pub struct BadId;

impl StreamId {
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// The smallest id strictly greater than this one.
    pub fn next(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for StreamId {
    type Err = BadId;

    /// Parses `<ms>-<seq>` strictly (digits only, no sign, no spaces).
    fn from_str(s: &str) -> Result<Self, BadId> {
        let (ms, seq) = s.split_once('-').ok_or(BadId)?;
        Ok(Self {
            ms: parse_digits(ms)?,
            seq: parse_digits(seq)?,
        })
    }
}

fn parse_digits(s: &str) -> Result<u64, BadId> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadId);
    }
    s.parse().map_err(|_| BadId)
}

/// Where a replay starts, as a client writes it in `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// An event id: replay every event with a greater id.
    Id(StreamId),
    /// A plain millisecond timestamp: replay every event with a later `ts`.
    Ts(u64),
}

impl Since {
    /// The first id that is replayed.
    pub fn first_wanted(self) -> StreamId {
        match self {
            Since::Id(id) => id.next(),
            Since::Ts(ms) => StreamId::new(ms.saturating_add(1), 0),
        }
    }

    /// The last id the client is taken to have (everything up to it is not replayed).
    pub fn last_seen(self) -> StreamId {
        match self {
            Since::Id(id) => id,
            Since::Ts(ms) => StreamId::new(ms, u64::MAX),
        }
    }
}

impl FromStr for Since {
    type Err = BadId;

    fn from_str(s: &str) -> Result<Self, BadId> {
        if s.contains('-') {
            s.parse().map(Since::Id)
        } else {
            parse_digits(s).map(Since::Ts)
        }
    }
}

/// The prefix every event frame starts with.
pub const FRAME_PREFIX: &str = "{\"op\":\"event\",\"id\":\"";

/// Reads the id of an event frame built by the publish script or [`write_frame`].
pub fn frame_id(frame: &[u8]) -> Option<StreamId> {
    let rest = frame.strip_prefix(FRAME_PREFIX.as_bytes())?;
    let end = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Appends the event frame for one stored event to `out`.
///
/// `type_json` is the event type as a JSON string literal and `data` the
/// event's JSON data, both as stored in the stream by the publish script.
pub fn write_frame(out: &mut String, topic: &str, id: StreamId, type_json: &str, data: &str) {
    use fmt::Write;
    out.reserve(64 + topic.len() + type_json.len() + data.len());
    let _ = write!(
        out,
        "{FRAME_PREFIX}{id}\",\"topic\":\"{topic}\",\"type\":{type_json},\"data\":{data},\"ts\":{}}}",
        id.ms
    );
}

/// Appends the event object (the frame without `"op":"event"`), as polling
/// and SSE send it.
pub fn write_event(out: &mut String, topic: &str, id: StreamId, type_json: &str, data: &str) {
    use fmt::Write;
    out.reserve(48 + topic.len() + type_json.len() + data.len());
    let _ = write!(
        out,
        "{{\"id\":\"{id}\",\"topic\":\"{topic}\",\"type\":{type_json},\"data\":{data},\"ts\":{}}}",
        id.ms
    );
}

/// The event object of a frame (`{"topic",...}` without `"op":"event"`), as
/// sent by polling and SSE.
pub fn frame_to_event(frame: &str) -> String {
    let body = frame
        .strip_prefix("{\"op\":\"event\",")
        .unwrap_or(frame.trim_start_matches('{'));
    let mut out = String::with_capacity(body.len() + 1);
    out.push('{');
    out.push_str(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_strictly_and_order_numerically() {
        let a: StreamId = "1732240000000-3".parse().unwrap();
        let b: StreamId = "1732240000000-10".parse().unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "1732240000000-3");
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1-2-3",
            "a-1",
            "+1-2",
            "1 -2",
            "99999999999999999999999-0",
        ] {
            assert!(bad.parse::<StreamId>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn since_accepts_ids_and_timestamps() {
        assert_eq!(
            "5-1".parse::<Since>().unwrap().first_wanted(),
            StreamId::new(5, 2)
        );
        assert_eq!(
            "5".parse::<Since>().unwrap().first_wanted(),
            StreamId::new(6, 0)
        );
        assert!("x".parse::<Since>().is_err());
        assert!("".parse::<Since>().is_err());
    }

    #[test]
    fn frames_carry_their_id_and_parse_as_the_contract_event() {
        let mut f = String::new();
        write_frame(
            &mut f,
            "job:1",
            StreamId::new(17, 2),
            "\"job.progress\"",
            "{\"percent\":40}",
        );
        assert_eq!(frame_id(f.as_bytes()), Some(StreamId::new(17, 2)));
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["op"], "event");
        assert_eq!(v["topic"], "job:1");
        assert_eq!(v["id"], "17-2");
        assert_eq!(v["type"], "job.progress");
        assert_eq!(v["data"]["percent"], 40);
        assert_eq!(v["ts"], 17);
        let e: serde_json::Value = serde_json::from_str(&frame_to_event(&f)).unwrap();
        assert!(e.get("op").is_none());
        assert_eq!(e["id"], "17-2");
        let mut bare = String::new();
        write_event(
            &mut bare,
            "job:1",
            StreamId::new(17, 2),
            "\"job.progress\"",
            "{\"percent\":40}",
        );
        assert_eq!(bare, frame_to_event(&f));
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = s.parse::<StreamId>();
            let _ = s.parse::<Since>();
        }

        #[test]
        fn parse_never_panics_on_id_like_text(s in "[0-9+ -]{0,45}") {
            if let Ok(id) = s.parse::<StreamId>() {
                prop_assert_eq!(id.to_string().parse::<StreamId>(), Ok(id));
            }
            let _ = s.parse::<Since>();
        }

        #[test]
        fn stream_id_display_round_trips(ms in any::<u64>(), seq in any::<u64>()) {
            let id = StreamId::new(ms, seq);
            prop_assert_eq!(id.to_string().parse::<StreamId>(), Ok(id));
            prop_assert_eq!(id.to_string().parse::<Since>(), Ok(Since::Id(id)));
        }

        #[test]
        fn since_timestamp_round_trips(ms in any::<u64>()) {
            prop_assert_eq!(ms.to_string().parse::<Since>(), Ok(Since::Ts(ms)));
            prop_assert!(Since::Ts(ms).first_wanted() > Since::Ts(ms).last_seen() || ms == u64::MAX);
        }

        #[test]
        fn next_is_strictly_greater_below_the_top(ms in any::<u64>(), seq in any::<u64>()) {
            let id = StreamId::new(ms, seq);
            prop_assume!(id != StreamId::new(u64::MAX, u64::MAX));
            prop_assert!(id.next() > id);
            prop_assert_eq!(Since::Id(id).first_wanted(), id.next());
        }
    }
}
