//! Reads for polling and SSE: every topic of a request after the request's
//! cursor, in one batch, advancing the cursor. The cursor carries each
//! topic's epoch and last id, so any gateway serves any poll.

use relay_shared::bus::{Bus, BusError, StoredEvent};
use relay_shared::cursor::Cursor;
use relay_shared::event::{Since, StreamId};
use relay_shared::topic::Topic;

/// Where a reader stands: its topics and its cursor.
#[derive(Debug, Clone)]
pub struct Start {
    pub topics: Vec<Topic>,
    pub cursor: Cursor,
    /// `since` for a topic the cursor does not name yet.
    pub since: Option<Since>,
}

impl Start {
    /// Whether the reader resumes from a position (a cursor or `since`)
    /// rather than starting at the end: only then is recovery counted.
    pub fn resuming(&self) -> bool {
        !self.cursor.positions.is_empty() || self.since.is_some()
    }
}

/// A batch of events read after a cursor.
#[derive(Debug)]
pub struct Batch {
    /// Events, oldest first across topics.
    pub events: Vec<(Topic, StoredEvent)>,
    pub recovered: bool,
}

/// Reads every topic's events after the cursor (at most the history size
/// each) and advances it.
pub async fn read(bus: &Bus, start: &mut Start) -> Result<Batch, BusError> {
    let limit = bus.settings().history_size as usize;
    let reads = start.topics.iter().map(|t| {
        let (since, epoch) = match start.cursor.get(t) {
            Some(p) => (
                Some(Since::Id(p.id)),
                Some(p.epoch.clone()).filter(|e| !e.is_empty()),
            ),
            None => (start.since, None),
        };
        let t = t.clone();
        async move {
            let h = bus.history(&t, since, epoch.as_deref(), limit).await;
            (t, since, h)
        }
    });
    let results = futures_util::future::join_all(reads).await;
    let mut events = Vec::new();
    let mut recovered = true;
    for (t, since, h) in results {
        let h = h?;
        if since.is_some() {
            recovered &= h.info.recovered(since);
        }
        let pos = match (h.events.last(), since) {
            (Some(ev), _) => ev.id,
            (None, Some(_)) if h.info.epoch_changed => h.info.last,
            (None, Some(s)) => since_id(s),
            (None, None) => h.info.last,
        };
        start.cursor.set(&t, &h.info.epoch, pos);
        events.extend(h.events.into_iter().map(|e| (t.clone(), e)));
    }
    // A topic now has a cursor position: `since` no longer applies.
    start.since = None;
    events.sort_by(|a, b| a.1.id.cmp(&b.1.id).then_with(|| a.0.cmp(&b.0)));
    Ok(Batch { events, recovered })
}

/// The id form of a `since` (a timestamp becomes the last id of that millisecond).
fn since_id(s: Since) -> StreamId {
    match s {
        Since::Id(id) => id,
        Since::Ts(ms) => StreamId::new(ms, u64::MAX),
    }
}
