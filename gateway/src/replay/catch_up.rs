//! What the hub delivers after its pub/sub connection comes back: each
//! topic's events after the last one it dispatched, so events published
//! during the outage still arrive, once. When the topic's history was lost
//! meanwhile (Redis restarted empty, or the topic expired), its subscribers
//! first get a notice: an unsolicited `subscribed` with `recovered: false`
//! and the topic's new epoch.

use axum::extract::ws::Utf8Bytes;
use relay_shared::bus::{Bus, BusError, HistoryInfo};
use relay_shared::event::{Since, StreamId};
use relay_shared::protocol::ServerFrame;
use relay_shared::topic::Topic;

use super::frames::{frames_of, Frames};

/// A topic's events after a position, as the hub hands them out again.
pub struct CatchUp {
    /// The topic's history was lost: this notice goes to its subscribers
    /// first, and their positions start over in `epoch`.
    pub lost: Option<Utf8Bytes>,
    pub epoch: String,
    pub frames: Frames,
}

/// Reads `topic`'s events after `after` in `epoch` (at most the history size).
pub async fn catch_up(
    bus: &Bus,
    topic: &Topic,
    after: StreamId,
    epoch: Option<&str>,
) -> Result<CatchUp, BusError> {
    let limit = bus.settings().history_size as usize;
    let history = bus
        .history(topic, Some(Since::Id(after)), epoch, limit)
        .await?;
    let lost = history
        .info
        .epoch_changed
        .then(|| lost_history_notice(topic, &history.info, history.events.len()));
    Ok(CatchUp {
        lost,
        frames: frames_of(topic, &history.events),
        epoch: history.info.epoch,
    })
}

/// The notice to subscribers of a topic whose history was lost while they
/// were subscribed.
fn lost_history_notice(topic: &Topic, info: &HistoryInfo, replayed: usize) -> Utf8Bytes {
    let frame = ServerFrame::Subscribed {
        id: None,
        topic: topic.as_str(),
        position: info.last.to_string(),
        epoch: &info.epoch,
        recovered: false,
        replayed,
    };
    frame.to_json().into()
}
