//! Topic names: validation and the reserved shapes of the contract.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Longest topic name the contract allows.
pub const MAX_TOPIC_LEN: usize = 128;

/// Why a topic name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is empty")]
    Empty,
    #[error("topic is longer than {MAX_TOPIC_LEN} characters")]
    TooLong,
    #[error("topic has a character outside [A-Za-z0-9._:@-] at byte {0}")]
    BadChar(usize),
}

/// A validated topic name: 1..=128 characters from `[A-Za-z0-9._:@-]`.
///
/// Cheap to clone (shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Topic(Arc<str>);

/// The reserved shapes of topic names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind<'a> {
    /// `job:{id}`: every event of one job.
    Job(&'a str),
    /// `user:{sub}`: one user's job state events and anything published to it.
    User(&'a str),
    /// `jobs`: state events of all jobs.
    Jobs,
    /// `broadcast`: announcements for everyone.
    Broadcast,
    /// Any other application topic.
    App,
}

/// Checks a topic name against the contract without allocating.
pub fn validate(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    match name.bytes().position(|b| !is_topic_byte(b)) {
        Some(at) => Err(TopicError::BadChar(at)),
        None => Ok(()),
    }
}

fn is_topic_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-')
}

impl Topic {
    /// Whether both are the same shared name (a pointer comparison; equal
    /// names made separately are not the same).
    pub fn same(&self, other: &Topic) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Validates and wraps a topic name.
    pub fn new(name: &str) -> Result<Self, TopicError> {
        validate(name)?;
        Ok(Self(Arc::from(name)))
    }

    /// The job topic `job:{id}`.
    pub fn job(id: &str) -> Result<Self, TopicError> {
        Self::new(&format!("job:{id}"))
    }

    /// The user topic `user:{sub}`.
    pub fn user(sub: &str) -> Result<Self, TopicError> {
        Self::new(&format!("user:{sub}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Which reserved shape this topic has.
    pub fn kind(&self) -> TopicKind<'_> {
        kind_of(&self.0)
    }
}

/// Which reserved shape a (valid) topic name has.
pub fn kind_of(name: &str) -> TopicKind<'_> {
    if let Some(id) = name.strip_prefix("job:") {
        TopicKind::Job(id)
    } else if let Some(sub) = name.strip_prefix("user:") {
        TopicKind::User(sub)
    } else if name == "jobs" {
        TopicKind::Jobs
    } else if name == "broadcast" {
        TopicKind::Broadcast
    } else {
        TopicKind::App
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::borrow::Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Topic::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses a comma-separated list of topics (as in `?topics=a,b`), refusing
/// duplicates, empty entries and more than `max` topics.
pub fn parse_list(list: &str, max: usize) -> Result<Vec<Topic>, TopicError> {
    let mut out: Vec<Topic> = Vec::new();
    for name in list.split(',') {
        let topic = Topic::new(name.trim())?;
        if !out.contains(&topic) {
            out.push(topic);
        }
    }
    if out.len() > max {
        return Err(TopicError::TooLong);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_contract_alphabet() {
        assert!(Topic::new("job:7f3a").is_ok());
        assert!(Topic::new("chat:room-1.a_b@c").is_ok());
        assert!(Topic::new(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(Topic::new(""), Err(TopicError::Empty));
        assert_eq!(Topic::new(&"a".repeat(129)), Err(TopicError::TooLong));
        assert_eq!(Topic::new("a b"), Err(TopicError::BadChar(1)));
        assert_eq!(Topic::new("a{b}"), Err(TopicError::BadChar(1)));
        assert_eq!(Topic::new("é"), Err(TopicError::BadChar(0)));
        assert_eq!(Topic::new("a,b"), Err(TopicError::BadChar(1)));
    }

    #[test]
    fn knows_reserved_shapes() {
        assert_eq!(Topic::new("job:1").unwrap().kind(), TopicKind::Job("1"));
        assert_eq!(Topic::new("user:al").unwrap().kind(), TopicKind::User("al"));
        assert_eq!(Topic::new("jobs").unwrap().kind(), TopicKind::Jobs);
        assert_eq!(
            Topic::new("broadcast").unwrap().kind(),
            TopicKind::Broadcast
        );
        assert_eq!(Topic::new("jobsx").unwrap().kind(), TopicKind::App);
    }
}
