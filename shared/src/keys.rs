//! Redis key and channel naming.
//!
//! Every key of one topic shares the hash tag `{t:<topic>}`, so a topic's
//! stream, epoch and channel live in one Redis Cluster slot and the publish
//! script never crosses slots. Topic names cannot contain `{` or `}`, so the
//! tag is always exactly the topic.

use crate::topic::Topic;

/// The stream holding a topic's retained history.
pub fn stream(topic: &str) -> String {
    format!("relay:{{t:{topic}}}:s")
}

/// The key holding the current epoch (one life of the history) of a topic.
pub fn epoch(topic: &str) -> String {
    format!("relay:{{t:{topic}}}:e")
}

/// The newest id trimmed from a topic's stream (trimming does not show in
/// `XINFO STREAM`'s `max-deleted-entry-id`).
pub fn trimmed(topic: &str) -> String {
    format!("relay:{{t:{topic}}}:d")
}

/// The marker of an event published to a topic at most once (see
/// [`crate::bus::Bus::publish_once`]); it lives as long as the topic's history.
pub fn once(topic: &str, marker: &str) -> String {
    format!("relay:{{t:{topic}}}:o:{marker}")
}

/// The pub/sub channel carrying a topic's live events.
pub fn channel(topic: &str) -> String {
    format!("relay:{{t:{topic}}}:c")
}

/// The topic of a channel named by [`channel`].
pub fn topic_of_channel(channel: &str) -> Option<&str> {
    channel.strip_prefix("relay:{t:")?.strip_suffix("}:c")
}

/// The hash where gateways and workers report themselves for `/v1/status`.
pub const INSTANCES: &str = "relay:instances";

/// The sorted set of polling clients seen recently (score: last seen, ms).
pub const POLLERS: &str = "relay:pollers";

/// The keys of a topic, in the order the publish script takes them.
pub fn topic_keys(topic: &Topic) -> [String; 4] {
    let t = topic.as_str();
    [stream(t), epoch(t), channel(t), trimmed(t)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        let c = channel("job:7f3a");
        assert_eq!(c, "relay:{t:job:7f3a}:c");
        assert_eq!(topic_of_channel(&c), Some("job:7f3a"));
        assert_eq!(topic_of_channel("other"), None);
    }

    #[test]
    fn keys_of_a_topic_share_one_hash_tag() {
        let tag = |k: &str| {
            let open = k.find('{').unwrap();
            let close = k[open..].find('}').unwrap() + open;
            k[open + 1..close].to_string()
        };
        let t = Topic::new("user:alice@x").unwrap();
        let [s, e, c, d] = topic_keys(&t);
        assert_eq!(tag(&s), tag(&e));
        assert_eq!(tag(&e), tag(&c));
        assert_eq!(tag(&c), tag(&d));
    }
}
