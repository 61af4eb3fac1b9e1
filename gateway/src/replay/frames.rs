//! The frames of a WebSocket replay: formatted once per read, then merged
//! with the live events a subscription buffered while its history was read.
//!
//! A subscription buffers live events from the moment it registers with
//! the hub, before its history is read, so the two overlap. The merge sends
//! the replay, then each buffered event newer than everything sent before
//! it and than the subscription's cut-off (the replay's end, or the
//! client's `since` when that is later): no gap, no duplicate.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use relay_shared::bus::{HistoryInfo, StoredEvent};
use relay_shared::event::{Since, StreamId};
use relay_shared::topic::Topic;

/// `(id, frame)` of each event, oldest first.
pub type Frames = Arc<[(StreamId, Utf8Bytes)]>;

/// The event frames of `events` of `topic`, each formatted once.
pub fn frames_of(topic: &Topic, events: &[StoredEvent]) -> Frames {
    let mut buf = String::new();
    events
        .iter()
        .map(|ev| {
            buf.clear();
            ev.write_frame(&mut buf, topic.as_str());
            (ev.id, Utf8Bytes::from(buf.as_str()))
        })
        .collect()
}

/// The id at or below which a subscription's buffered live events are
/// covered: the replay's end, or the client's `since` when that is later
/// (and its epoch still holds: a new epoch's ids start again).
pub fn cutoff(info: &HistoryInfo, since: Option<Since>) -> StreamId {
    match since {
        Some(s) if !info.epoch_changed => info.last.max(s.last_seen()),
        _ => info.last,
    }
}

/// A replay merged with the live events buffered while it was read, as the
/// frames to send in order; [`Merge::position`] is then the topic's position.
pub struct Merge {
    replay: Frames,
    next: usize,
    buffered: std::vec::IntoIter<(StreamId, Utf8Bytes)>,
    last: StreamId,
}

/// Merges `replay` (all of it) with the `buffered` live events after `cutoff`.
pub fn merge(replay: Frames, cutoff: StreamId, buffered: Vec<(StreamId, Utf8Bytes)>) -> Merge {
    Merge {
        replay,
        next: 0,
        buffered: buffered.into_iter(),
        last: cutoff,
    }
}

impl Merge {
    /// The newest id sent (or covered) so far.
    pub fn position(&self) -> StreamId {
        self.last
    }
}

impl Iterator for Merge {
    type Item = Utf8Bytes;

    fn next(&mut self) -> Option<Utf8Bytes> {
        if let Some((id, frame)) = self.replay.get(self.next) {
            self.next += 1;
            self.last = self.last.max(*id);
            return Some(frame.clone());
        }
        for (id, frame) in self.buffered.by_ref() {
            if id > self.last {
                self.last = id;
                return Some(frame);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ms: u64) -> (StreamId, Utf8Bytes) {
        (StreamId::new(ms, 0), Utf8Bytes::from(format!("e{ms}")))
    }

    fn info(last: u64, epoch_changed: bool) -> HistoryInfo {
        HistoryInfo {
            epoch: "e".into(),
            last: StreamId::new(last, 0),
            max_deleted: StreamId::ZERO,
            epoch_changed,
            truncated: false,
        }
    }

    #[test]
    fn buffered_events_the_replay_covered_are_not_sent_twice() {
        let replay: Frames = vec![frame(2), frame(3)].into();
        let buffered = vec![frame(3), frame(4), frame(4), frame(1), frame(5)];
        let mut m = merge(replay, StreamId::new(3, 0), buffered);
        let sent: Vec<String> = m.by_ref().map(|f| f.to_string()).collect();
        assert_eq!(sent, ["e2", "e3", "e4", "e5"]);
        assert_eq!(m.position(), StreamId::new(5, 0));
    }

    #[test]
    fn the_cutoff_is_the_later_of_the_replay_end_and_since_in_one_epoch() {
        let since = Some(Since::Id(StreamId::new(9, 0)));
        assert_eq!(cutoff(&info(5, false), since), StreamId::new(9, 0));
        assert_eq!(cutoff(&info(12, false), since), StreamId::new(12, 0));
        // A new epoch: the old `since` means nothing any more.
        assert_eq!(cutoff(&info(5, true), since), StreamId::new(5, 0));
        assert_eq!(cutoff(&info(5, false), None), StreamId::new(5, 0));
        // With a cut-off past the replay, buffered events up to it are skipped.
        let sent: Vec<String> = merge(
            Frames::from(vec![]),
            StreamId::new(9, 0),
            vec![frame(8), frame(10)],
        )
        .map(|f| f.to_string())
        .collect();
        assert_eq!(sent, ["e10"]);
    }
}
