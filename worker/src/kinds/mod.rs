//! The built-in kinds, one module each.
//!
//! - [`sleep`]: progress steps over a time, optionally failing first attempts.
//! - [`stream`]: streamed text as `job.chunk` events.
//! - [`reconcile`]: matching two CSV uploads by key.

pub mod reconcile;
pub mod sleep;
pub mod stream;

use crate::handler::Registry;

/// Adds the built-in kinds to a registry.
pub(crate) fn register_builtins(registry: Registry) -> Registry {
    registry
        .insert("sleep", sleep::Sleep)
        .insert("stream", stream::Stream)
        .insert("reconcile", reconcile::Reconcile)
}
