//! The worker's background duties, one task each, none per job:
//! lease renewal, reclaiming lapsed leases, writing progress to
//! PostgreSQL, publishing terminal events left in the outbox, and
//! reporting the worker and its queues.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use relay_shared::clock::now_ms;
use relay_shared::instances::{self, InstanceReport, WorkerReport};
use relay_shared::jobs::outbox;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Core, StopReason};
use crate::metrics;

/// Most lapsed leases taken back per kind per sweep.
const RECLAIM_BATCH: usize = 100;
/// How often the latest progress of running jobs is written to PostgreSQL.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How often the outbox is swept for terminal events their writer did not publish.
pub(crate) const OUTBOX_EVERY: Duration = Duration::from_secs(2);
/// How often the worker reports itself and its queues' depth.
pub(crate) const HEARTBEAT_EVERY: Duration = instances::REPORT_EVERY;

/// Starts every duty on `tasks`; they end when `stop` fires.
pub(crate) fn spawn_duties(core: &Arc<Core>, tasks: &TaskTracker, stop: &CancellationToken) {
    let lease = core.engine.settings().lease;
    let renew_every = (lease / 3).max(Duration::from_millis(200));
    let reclaim_every = (lease / 2).max(Duration::from_millis(500));
    tasks.spawn(every(
        renew_every,
        stop.clone(),
        core.clone(),
        |c| async move { renew(&c).await },
    ));
    tasks.spawn(every(
        reclaim_every,
        stop.clone(),
        core.clone(),
        |c| async move { reclaim(&c).await },
    ));
    tasks.spawn(every(
        PROGRESS_EVERY,
        stop.clone(),
        core.clone(),
        |c| async move { flush_progress(&c).await },
    ));
    tasks.spawn(every(
        OUTBOX_EVERY,
        stop.clone(),
        core.clone(),
        |c| async move { sweep_outbox(&c).await },
    ));
    tasks.spawn(every(
        HEARTBEAT_EVERY,
        stop.clone(),
        core.clone(),
        |c| async move { heartbeat(&c).await },
    ));
}

async fn every<F, Fut>(period: Duration, stop: CancellationToken, core: Arc<Core>, f: F)
where
    F: Fn(Arc<Core>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => f(core.clone()).await,
        }
    }
}

/// Renews the lease of every running job; stops the ones whose lease was
/// lost or that were asked to stop.
async fn renew(core: &Core) {
    let mut by_kind: HashMap<String, Vec<(String, String)>> = HashMap::new();
    if let Ok(running) = core.running.lock() {
        for (id, job) in running.iter() {
            by_kind
                .entry(job.kind.clone())
                .or_default()
                .push((id.clone(), job.token.clone()));
        }
    }
    for (kind, leases) in by_kind {
        match core.engine.renew(&kind, &leases).await {
            Ok(r) => {
                for id in r.lost {
                    core.stop_job(&id, StopReason::Lost);
                }
                for id in r.cancel {
                    core.stop_job(&id, StopReason::Cancelled("cancelled by request".into()));
                }
            }
            Err(e) => tracing::warn!(kind = %kind, error = %e, "lease renewal failed"),
        }
    }
}

/// Takes back this worker's kinds' jobs whose lease lapsed.
async fn reclaim(core: &Core) {
    for kind in &core.kinds {
        if let Err(e) = core.engine.reclaim(kind, RECLAIM_BATCH).await {
            tracing::debug!(kind = %kind, error = %e, "reclaim failed");
        }
    }
}

/// Publishes terminal events whose writer died (or lost Redis) first.
async fn sweep_outbox(core: &Core) {
    if !core.engine.store.is_migrated() {
        return;
    }
    if let Err(e) = outbox::sweep(&core.engine.store, &core.engine.events).await {
        tracing::debug!(error = %e, "outbox sweep failed");
    }
}

/// Writes the latest progress of running jobs, in one statement.
async fn flush_progress(core: &Core) {
    let mut batch = Vec::new();
    if let Ok(running) = core.running.lock() {
        for (id, job) in running.iter() {
            if let Ok(mut slot) = job.progress.lock() {
                if slot.dirty {
                    slot.dirty = false;
                    if let Some(p) = &slot.latest {
                        batch.push((id.clone(), p.clone()));
                    }
                }
            }
        }
    }
    if let Err(e) = core.engine.store.save_progress(&batch).await {
        tracing::debug!(error = %e, jobs = batch.len(), "progress not saved");
        // Mark them dirty again so the next flush tries once more.
        if let Ok(running) = core.running.lock() {
            for (id, _) in &batch {
                if let Some(job) = running.get(id) {
                    if let Ok(mut slot) = job.progress.lock() {
                        slot.dirty = true;
                    }
                }
            }
        }
    }
}

/// Reports this worker (an [`InstanceReport`]) and its kinds' queue depth as gauges.
async fn heartbeat(core: &Core) {
    let running = core.running_count();
    metrics::running(running, core.concurrency);
    let report = InstanceReport::Worker(WorkerReport {
        id: core.id.clone(),
        kinds: core.kinds.clone(),
        running: running as u64,
        concurrency: core.concurrency as u64,
        started_at_ms: core.started_at_ms,
        seen_ms: now_ms(),
    });
    let client = core.engine.queue.client();
    if client.is_connected() {
        if let Err(e) = instances::write(client, &report).await {
            tracing::debug!(error = %e, "heartbeat not written");
        }
    }
    for kind in &core.kinds {
        if let Ok(d) = core.engine.queue.depth(kind).await {
            metrics::depth(kind, d);
        }
    }
    if let Ok(dead) = core.engine.store.dead_counts().await {
        for (kind, n) in dead {
            if core.kinds.contains(&kind) {
                metrics::dead(&kind, n);
            }
        }
    }
}

/// Removes this worker's report (on shutdown).
pub(crate) async fn deregister(core: &Core) {
    if let Err(e) = instances::forget(core.engine.queue.client(), &core.id).await {
        tracing::debug!(error = %e, "instance entry not removed");
    }
}
