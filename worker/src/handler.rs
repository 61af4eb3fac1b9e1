//! The `Handler` trait an application implements for each of its kinds,
//! and the registry of kinds.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::context::JobContext;
use crate::error::JobResult;
use relay_shared::jobs::model::valid_kind_name;

/// The work of one job kind.
///
/// ```no_run
/// use relay_worker::{Handler, JobContext, JobError, JobResult, Progress};
///
/// struct Thumbnail;
///
/// impl Handler for Thumbnail {
///     async fn run(&self, ctx: JobContext) -> JobResult {
///         let url: String = ctx.payload_as::<serde_json::Value>()?["url"]
///             .as_str()
///             .ok_or_else(|| JobError::fatal("payload.url must be a string"))?
///             .to_string();
///         ctx.progress(Progress::percent(50.0).step("resize")).await;
///         if ctx.is_cancelled() {
///             return Err(JobError::Cancelled);
///         }
///         Ok(serde_json::json!({ "thumbnail": format!("{url}?w=128") }))
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt. Stop soon after `ctx.cancelled()` fires (cancel,
    /// timeout, lost lease or shutdown): a handler still running a few
    /// seconds later is dropped.
    fn run(&self, ctx: JobContext) -> impl Future<Output = JobResult> + Send;
}

/// A handler made of a closure: `handler_fn(|ctx| async move { ... })`.
pub struct FnHandler<F>(F);

/// Wraps a closure returning a future as a [`Handler`].
pub fn handler_fn<F, Fut>(f: F) -> FnHandler<F>
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobResult> + Send + 'static,
{
    FnHandler(f)
}

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobResult> + Send + 'static,
{
    fn run(&self, ctx: JobContext) -> impl Future<Output = JobResult> + Send {
        (self.0)(ctx)
    }
}

pub(crate) type BoxJob<'a> = Pin<Box<dyn Future<Output = JobResult> + Send + 'a>>;

/// Object-safe form of [`Handler`], for the registry.
pub(crate) trait DynHandler: Send + Sync {
    fn call(&self, ctx: JobContext) -> BoxJob<'_>;
}

impl<H: Handler> DynHandler for H {
    fn call(&self, ctx: JobContext) -> BoxJob<'_> {
        Box::pin(self.run(ctx))
    }
}

/// A kind name that is not `[a-z0-9_.-]{1,64}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("job kind {0:?} must be 1..=64 characters of [a-z0-9_.-]")]
pub struct BadKind(pub String);

/// The kinds a worker can run, each with its handler.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn DynHandler>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the handler of a kind.
    pub fn register<H: Handler>(mut self, kind: &str, handler: H) -> Result<Self, BadKind> {
        if !valid_kind_name(kind) {
            return Err(BadKind(kind.to_string()));
        }
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        Ok(self)
    }

    /// Adds a handler under a name known to be valid (the built-in kinds).
    pub(crate) fn insert<H: Handler>(mut self, kind: &'static str, handler: H) -> Self {
        debug_assert!(valid_kind_name(kind));
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }

    /// Kinds registered, in name order.
    pub fn kinds(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    pub(crate) fn get(&self, kind: &str) -> Option<Arc<dyn DynHandler>> {
        self.handlers.get(kind).cloned()
    }
}
