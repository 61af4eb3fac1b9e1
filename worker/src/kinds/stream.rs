//! `stream`: `{"text":"...","chunk_chars":8,"interval_ms":20}`: `job.chunk`
//! events that concatenate to `text` (split on character boundaries), then
//! `{"chars":N}`.

use std::time::Duration;

use relay_shared::jobs::kinds::{validate, StreamPayload};
use serde_json::json;

use crate::context::JobContext;
use crate::error::{JobError, JobResult};
use crate::handler::Handler;
use crate::Progress;

/// The `stream` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stream;

impl Handler for Stream {
    async fn run(&self, ctx: JobContext) -> JobResult {
        validate("stream", ctx.payload()).map_err(JobError::fatal)?;
        let p: StreamPayload = ctx.payload_as()?;
        let chars: Vec<char> = p.text.chars().collect();
        let total = chars.len();
        let mut tick = tokio::time::interval(Duration::from_millis(p.interval_ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let chunks = chars.chunks(p.chunk_chars.max(1));
        let n = chunks.len();
        for (i, chunk) in chunks.enumerate() {
            if p.interval_ms > 0 {
                tokio::select! {
                    _ = ctx.cancelled() => return Err(JobError::Cancelled),
                    _ = tick.tick() => {}
                }
            } else if ctx.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            ctx.chunk(chunk.iter().collect::<String>()).await?;
            // A progress event per tenth of the text, not per chunk.
            let done = i + 1;
            if n >= 10 && done % (n / 10) == 0 && done < n {
                ctx.progress(Progress::percent(100.0 * done as f64 / n as f64).step("stream"))
                    .await;
            }
        }
        Ok(json!({ "chars": total }))
    }
}
