//! Poll and SSE cursors: where a reader is in each of its topics.
//!
//! A cursor is opaque to clients: base64url (no padding) of
//! `1;<topic>=<epoch>=<id>;...`. Topic names cannot contain `;` or `=`, and
//! epochs are `[0-9a-z]`, so the text form needs no escaping.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::event::StreamId;
use crate::topic::Topic;

/// Longest cursor accepted, in characters (bounds the work a bad one costs).
pub const MAX_CURSOR_LEN: usize = 8192;

/// The position of a reader in one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub topic: Topic,
    /// The epoch the position belongs to (empty when unknown).
    pub epoch: String,
    /// The last event id the reader has.
    pub id: StreamId,
}

/// A reader's positions across its topics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    pub positions: Vec<Position>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed cursor")]
pub struct BadCursor;

impl Cursor {
    pub fn get(&self, topic: &Topic) -> Option<&Position> {
        self.positions.iter().find(|p| &p.topic == topic)
    }

    /// Sets a topic's position, adding the topic if it is new.
    pub fn set(&mut self, topic: &Topic, epoch: &str, id: StreamId) {
        match self.positions.iter_mut().find(|p| &p.topic == topic) {
            Some(p) => {
                if p.epoch != epoch {
                    p.epoch = epoch.to_string();
                }
                p.id = id;
            }
            None => self.positions.push(Position {
                topic: topic.clone(),
                epoch: epoch.to_string(),
                id,
            }),
        }
    }

    pub fn encode(&self) -> String {
        let mut text = String::from("1");
        for p in &self.positions {
            text.push(';');
            text.push_str(p.topic.as_str());
            text.push('=');
            text.push_str(&p.epoch);
            text.push('=');
            text.push_str(&p.id.to_string());
        }
        URL_SAFE_NO_PAD.encode(text)
    }

    pub fn decode(s: &str) -> Result<Self, BadCursor> {
        if s.is_empty() || s.len() > MAX_CURSOR_LEN {
            return Err(BadCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| BadCursor)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| BadCursor)?;
        let mut parts = text.split(';');
        if parts.next() != Some("1") {
            return Err(BadCursor);
        }
        let mut cursor = Cursor::default();
        for part in parts {
            let mut fields = part.split('=');
            let (Some(topic), Some(epoch), Some(id), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(BadCursor);
            };
            let topic = Topic::new(topic).map_err(|_| BadCursor)?;
            if epoch.len() > 64 || !epoch.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(BadCursor);
            }
            let id: StreamId = id.parse().map_err(|_| BadCursor)?;
            if cursor.get(&topic).is_some() {
                return Err(BadCursor);
            }
            cursor.positions.push(Position {
                topic,
                epoch: epoch.to_string(),
                id,
            });
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut c = Cursor::default();
        c.set(&Topic::new("job:1").unwrap(), "abc", StreamId::new(5, 1));
        c.set(&Topic::new("user:a@b.c").unwrap(), "", StreamId::ZERO);
        c.set(&Topic::new("job:1").unwrap(), "abc", StreamId::new(6, 0));
        let s = c.encode();
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Cursor::decode(&s).unwrap(), c);
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "!!!",
            "MQ",
            "eA",
            &URL_SAFE_NO_PAD.encode("1;a=b"),
            &URL_SAFE_NO_PAD.encode("1;a b=e=1-0"),
            &URL_SAFE_NO_PAD.encode("1;a=e=1-0;a=e=2-0"),
            &URL_SAFE_NO_PAD.encode("2;a=e=1-0"),
            &"A".repeat(9000),
        ] {
            if bad == "MQ" {
                // "1": a cursor over no topics is well-formed.
                assert!(Cursor::decode(bad).is_ok());
                continue;
            }
            assert_eq!(Cursor::decode(bad), Err(BadCursor), "{bad}");
        }
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    fn topic() -> impl Strategy<Value = Topic> {
        "[A-Za-z0-9._:@-]{1,128}".prop_map(|t| Topic::new(&t).unwrap())
    }

    fn position() -> impl Strategy<Value = (Topic, String, StreamId)> {
        (
            topic(),
            "[0-9a-z]{0,64}",
            any::<(u64, u64)>().prop_map(|(ms, seq)| StreamId::new(ms, seq)),
        )
    }

    proptest! {
        #[test]
        fn valid_cursors_round_trip(positions in proptest::collection::vec(position(), 0..20)) {
            let mut cursor = Cursor::default();
            for (topic, epoch, id) in &positions {
                cursor.set(topic, epoch, *id);
            }
            let text = cursor.encode();
            prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            prop_assert_eq!(Cursor::decode(&text), Ok(cursor));
        }

        #[test]
        fn decode_never_panics_on_text(s in any::<String>()) {
            let _ = Cursor::decode(&s);
        }

        #[test]
        fn decode_never_panics_on_encoded_text(s in "1(;[^;]{0,40}){0,5}") {
            // Well-formed base64 of near-miss plaintexts reaches the field parser.
            if let Ok(c) = Cursor::decode(&URL_SAFE_NO_PAD.encode(&s)) {
                prop_assert_eq!(Cursor::decode(&c.encode()), Ok(c));
            }
        }
    }
}
