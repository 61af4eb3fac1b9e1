//! The built-in kinds, one module each.
//!
//! - [`sleep`]: progress steps over a time, optionally failing first attempts.
//! - [`stream`]: streamed text as `job.chunk` events.
//! - [`reconcile`]: matching two CSV uploads by key.

pub mod reconcile;
pub mod sleep;
pub mod stream;

use crate::handler::Registry;

/// A registry of the built-in kinds: `sleep`, `stream`, `reconcile`; an
/// application registers its own kinds on top.
pub fn builtins() -> Registry {
    Registry::new()
        .insert("sleep", sleep::Sleep)
        .insert("stream", stream::Stream)
        .insert("reconcile", reconcile::Reconcile)
}
