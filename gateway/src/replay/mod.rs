//! Replay: everything that reads a topic's history for a client, and the
//! one rule for what a replay vouches for.
//!
//! Every transport replays from the same Redis streams, and every read
//! answers `recovered` by one rule ([`HistoryInfo::recovered`]): the epoch
//! the client knew still holds, nothing it asked for was trimmed, and the
//! read was not cut short.
//!
//! - [`reads`]: WebSocket subscribes' history reads, shared between
//!   subscribers who ask for the same thing and bounded in number.
//! - [`cursor`]: poll and SSE reads after a cursor (every topic of a
//!   request, advancing the cursor).
//! - [`catch_up`]: what the hub delivers after Redis comes back, and the
//!   notice for subscribers whose history was lost meanwhile.
//! - [`frames`]: event frames of a replay, the cut-off of a WebSocket
//!   subscription, and the merge of a replay with the live events buffered
//!   while it was read (no gap, no duplicate).
//!
//! [`HistoryInfo::recovered`]: relay_shared::bus::HistoryInfo::recovered

pub mod catch_up;
pub mod cursor;
pub mod frames;
pub mod reads;
