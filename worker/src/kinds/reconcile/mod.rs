//! `reconcile`: match two CSV uploads by key, with progress.
//!
//! Payload: `{"left":{"upload_id"},"right":{"upload_id"},"left_key","right_key",
//! "compare":[["AMOUNT","MONTANT"]],"delimiter":","|";","sample_limit":20}`.
//! Result: `total_left`, `total_right`, `matches`, `mismatches`,
//! `left_only`, `right_only`, `duplicate_keys` per side, the delimiters
//! used, and up to `sample_limit` samples of each category.
//!
//! The CSV work is blocking (the `csv` crate) and runs on a blocking thread;
//! the upload's chunks are fetched by an async task a few chunks ahead, so
//! memory holds the smaller side's keys and compared values, 16 bytes per
//! key found only on the larger side, and a few MiB of input. Progress
//! (by bytes read) is published every half second.

mod decimal;
mod input;
mod matcher;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_shared::jobs::kinds::{validate, ReconcilePayload};
use relay_shared::jobs::store::UploadMeta;
use serde_json::Value;

use self::input::{open_csv, ChunkReader, SourceState};
use self::matcher::{Hooks, MatchError, Spec, PHASE_LOAD};
use crate::context::JobContext;
use crate::error::{JobError, JobResult};
use crate::handler::Handler;
use crate::Progress;

/// How often progress is published while matching.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// The `reconcile` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reconcile;

impl Handler for Reconcile {
    async fn run(&self, ctx: JobContext) -> JobResult {
        validate("reconcile", ctx.payload()).map_err(JobError::fatal)?;
        let p: ReconcilePayload = ctx.payload_as()?;
        let delimiter = p.delimiter_byte().map_err(JobError::fatal)?;
        let left = upload(&ctx, &p.left.upload_id).await?;
        let right = upload(&ctx, &p.right.upload_id).await?;
        let total_bytes = (left.bytes + right.bytes).max(1);
        let left_is_small = left.bytes <= right.bytes;
        ctx.progress(
            Progress::percent(0.0)
                .step("load")
                .message("reading the smaller file"),
        )
        .await;

        let hooks = Arc::new(Hooks {
            stop: ctx.cancellation().child_token(),
            ..Hooks::default()
        });
        let (ls, rs) = (SourceState::default(), SourceState::default());
        let lr = ChunkReader::open(ctx.store().clone(), &left, ls.clone(), hooks.stop.clone());
        let rr = ChunkReader::open(ctx.store().clone(), &right, rs.clone(), hooks.stop.clone());
        let spec = Spec {
            left_key: p.left_key.clone(),
            right_key: p.right_key.clone(),
            compare: p.compare.clone(),
            sample_limit: p.sample_limit,
        };
        let work_hooks = hooks.clone();
        let mut work = tokio::task::spawn_blocking(move || -> Result<Value, MatchError> {
            let l = open_csv(lr, delimiter, "left").map_err(MatchError::Input)?;
            let r = open_csv(rr, delimiter, "right").map_err(MatchError::Input)?;
            matcher::reconcile(l, r, left_is_small, &spec, &work_hooks)
        });

        let started = Instant::now();
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.tick().await;
        let outcome = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = tick.tick() => {
                    let read = ls.consumed.load(Ordering::Relaxed) + rs.consumed.load(Ordering::Relaxed);
                    ctx.progress(progress(&hooks, read, total_bytes, started.elapsed())).await;
                }
            }
        };
        // Whatever happened, stop the fetchers.
        hooks.stop.cancel();
        let failed = |s: &SourceState| s.failed.lock().ok().and_then(|f| f.clone());
        match outcome {
            Ok(Ok(result)) => {
                ctx.progress(Progress::percent(100.0).step("done")).await;
                Ok(result)
            }
            Ok(Err(MatchError::Stopped)) => Err(JobError::Cancelled),
            Ok(Err(MatchError::Source(e))) => Err(JobError::retryable(e)),
            // A storage failure can surface as a CSV error; it is then retryable.
            Ok(Err(MatchError::Input(e))) => match failed(&ls).or_else(|| failed(&rs)) {
                Some(source) => Err(JobError::retryable(source)),
                None => Err(JobError::fatal(e)),
            },
            Err(join) => Err(JobError::fatal(format!("reconcile crashed: {join}"))),
        }
    }
}

/// An upload that exists and is complete, or a fatal job error.
async fn upload(ctx: &JobContext, id: &str) -> Result<UploadMeta, JobError> {
    match ctx.store().upload_meta(id).await {
        Ok(Some(meta)) if meta.complete => Ok(meta),
        Ok(_) => Err(JobError::fatal(format!("unknown upload {id:?}"))),
        Err(e) if e.is_unavailable() => Err(JobError::retryable(e.to_string())),
        Err(e) => Err(JobError::fatal(e.to_string())),
    }
}

fn progress(hooks: &Hooks, read: u64, total: u64, elapsed: Duration) -> Progress {
    let fraction = (read as f64 / total as f64).min(1.0);
    let step = if hooks.phase.load(Ordering::Relaxed) == PHASE_LOAD {
        "load"
    } else {
        "match"
    };
    let mut p = Progress::percent(99.0 * fraction)
        .step(step)
        .counts(hooks.rows.load(Ordering::Relaxed), None);
    if fraction > 0.01 {
        let left = elapsed.as_secs_f64() * (1.0 - fraction) / fraction;
        p = p.eta_ms((left * 1000.0) as u64);
    }
    p
}
