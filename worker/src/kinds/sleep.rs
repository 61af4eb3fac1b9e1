//! `sleep`: `{"ms":1000,"steps":10,"fail_attempts":0}`: `steps` progress
//! events evenly over `ms` (step i of n at `percent` 100·i/n), then
//! `{"slept_ms":...}`; the first `fail_attempts` attempts fail (retryable).

use std::time::{Duration, Instant};

use relay_shared::jobs::kinds::{validate, SleepPayload};
use serde_json::json;

use crate::context::JobContext;
use crate::error::{JobError, JobResult};
use crate::handler::Handler;
use crate::Progress;

/// The `sleep` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sleep;

impl Handler for Sleep {
    async fn run(&self, ctx: JobContext) -> JobResult {
        validate("sleep", ctx.payload()).map_err(JobError::fatal)?;
        let p: SleepPayload = ctx.payload_as()?;
        if ctx.attempt() <= p.fail_attempts {
            return Err(JobError::retryable(format!(
                "failing attempt {} of the first {} on purpose",
                ctx.attempt(),
                p.fail_attempts
            )));
        }
        let start = Instant::now();
        let steps = p.steps.max(1);
        for i in 1..=steps {
            // Step i is due at i/n of the time, measured from the start (no drift).
            let due = start + Duration::from_millis(p.ms) * i / steps;
            tokio::select! {
                _ = ctx.cancelled() => return Err(JobError::Cancelled),
                _ = tokio::time::sleep_until(due.into()) => {}
            }
            let left =
                (start + Duration::from_millis(p.ms)).saturating_duration_since(Instant::now());
            let progress = Progress::percent(100.0 * f64::from(i) / f64::from(steps))
                .step("sleep")
                .counts(u64::from(i), Some(u64::from(steps)))
                .eta_ms(left.as_millis() as u64);
            ctx.progress(progress).await;
        }
        Ok(json!({ "slept_ms": start.elapsed().as_millis() as u64 }))
    }
}
