//! The worker's engine: pull loops (one per kind), the jobs it runs, and
//! the background duties (lease renewal, reclaim, progress, heartbeat).

mod duties;
mod execute;
mod signals;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use relay_shared::clock::now_ms;
use relay_shared::jobs::attempt::Engine;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::ProgressSlot;
use crate::handler::Registry;

/// Most jobs taken in one pull.
pub(crate) const PULL_BATCH: usize = 32;
/// Longest an idle pull loop waits before looking again (a missed
/// notification costs at most this).
pub(crate) const IDLE_WAIT: Duration = Duration::from_secs(2);
/// How long a pull loop pauses after PostgreSQL or Redis failed it.
pub(crate) const TROUBLE_PAUSE: Duration = Duration::from_secs(1);

/// Why a running job was told to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopReason {
    Cancelled(String),
    Timeout,
    /// Another worker may own it now: write nothing.
    Lost,
    /// The worker is shutting down: give it back.
    Shutdown,
}

/// One job this worker runs.
pub(crate) struct RunningJob {
    pub(crate) kind: String,
    pub(crate) token: String,
    pub(crate) stop: CancellationToken,
    pub(crate) reason: Arc<OnceLock<StopReason>>,
    pub(crate) progress: Arc<Mutex<ProgressSlot>>,
}

/// Everything the worker's tasks share.
pub(crate) struct Core {
    pub(crate) id: String,
    /// The attempt rules (and the store, queue and events under them).
    pub(crate) engine: Engine,
    pub(crate) registry: Registry,
    pub(crate) kinds: Vec<String>,
    pub(crate) concurrency: usize,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) running: Mutex<HashMap<String, RunningJob>>,
    pub(crate) wake: HashMap<String, Arc<Notify>>,
    /// Stop taking jobs (shutdown started).
    pub(crate) draining: CancellationToken,
    /// Pull loops wait until this time (ms) after trouble.
    pub(crate) paused_until: AtomicU64,
    pub(crate) jobs: TaskTracker,
    pub(crate) started_at_ms: u64,
}

impl Core {
    pub(crate) fn running_count(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Tells a running job to stop (first reason wins).
    pub(crate) fn stop_job(&self, id: &str, reason: StopReason) {
        let Ok(running) = self.running.lock() else {
            return;
        };
        if let Some(job) = running.get(id) {
            let _ = job.reason.set(reason);
            job.stop.cancel();
        }
    }

    /// Tells every running job to stop.
    pub(crate) fn stop_all(&self, reason: StopReason) {
        let Ok(running) = self.running.lock() else {
            return;
        };
        for job in running.values() {
            let _ = job.reason.set(reason.clone());
            job.stop.cancel();
        }
    }

    pub(crate) fn pause_pulls(&self, d: Duration) {
        self.paused_until
            .fetch_max(now_ms() + d.as_millis() as u64, Ordering::Relaxed);
    }

    /// One kind's loop: wait for a free slot, pull a batch, run it; wait on
    /// the kind's channel (bounded) when the queue is empty.
    pub(crate) async fn pull_loop(self: Arc<Self>, kind: String) {
        let wake = self.wake.get(&kind).cloned().unwrap_or_default();
        let mut trouble = Duration::from_millis(100);
        loop {
            let pause = self
                .paused_until
                .load(Ordering::Relaxed)
                .saturating_sub(now_ms());
            if pause > 0 && !self.wait_or_drain(Duration::from_millis(pause), None).await {
                return;
            }
            let first = tokio::select! {
                p = self.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = self.draining.cancelled() => return,
            };
            let mut permits: Vec<OwnedSemaphorePermit> = vec![first];
            while permits.len() < PULL_BATCH {
                match self.slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let wanted = permits.len();
            let pulled = match self.engine.pull(&kind, &self.id, wanted).await {
                Ok(p) => p,
                Err(e) => {
                    drop(permits);
                    tracing::warn!(kind = %kind, error = %e, "pull failed");
                    if !self.wait_or_drain(trouble, None).await {
                        return;
                    }
                    trouble = (trouble * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            trouble = Duration::from_millis(100);
            let got = pulled.jobs.len();
            for job in pulled.jobs {
                let Some(permit) = permits.pop() else { break };
                let core = self.clone();
                self.jobs.spawn(execute::run(core, job, permit));
            }
            drop(permits);
            if got == wanted {
                continue;
            }
            let wait = pulled
                .next_delayed_ms
                .map(Duration::from_millis)
                .unwrap_or(IDLE_WAIT)
                .min(IDLE_WAIT);
            if !self.wait_or_drain(wait, Some(&wake)).await {
                return;
            }
        }
    }

    /// Waits `d` (or until woken); `false` when the worker is draining.
    async fn wait_or_drain(&self, d: Duration, wake: Option<&Notify>) -> bool {
        let woken = async {
            match wake {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.draining.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
            _ = woken => true,
        }
    }
}

pub(crate) use duties::{deregister, spawn_duties};
pub(crate) use signals::spawn_signals;
