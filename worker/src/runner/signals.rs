//! The worker's subscription to its kinds' channels: `n` wakes the kind's
//! pull loop, `c:<id>` stops a job this worker runs. Messages can be missed
//! while Redis is away; bounded waits and lease renewal (which reports
//! cancels too) cover that.

use std::sync::Arc;

use fred::prelude::*;
use relay_shared::jobs::queue::{keys, Signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Core, StopReason};

/// Subscribes `subscriber` to the kinds' channels and handles messages until `stop`.
pub(crate) fn spawn_signals(
    core: &Arc<Core>,
    subscriber: Client,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) {
    let channels: Vec<String> = core.kinds.iter().map(|k| keys::events(k)).collect();
    let sharded = core.engine.queue.sharded();
    let (core, stop) = (core.clone(), stop.clone());
    tasks.spawn(async move {
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let mut subscribed = subscribe(&subscriber, &channels, sharded).await;
        let mut retry = tokio::time::interval(RESUBSCRIBE_EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = retry.tick(), if !subscribed => subscribed = subscribe(&subscriber, &channels, sharded).await,
                r = reconnects.recv() => match r {
                    Ok(_) => subscribed = subscribe(&subscriber, &channels, sharded).await,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => subscribed = false,
                    Err(_) => break,
                },
                m = messages.recv() => match m {
                    Ok(m) => handle(&core, &m.channel, m.value.as_str().as_deref().unwrap_or("")),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "queue signals lagged; pull loops wake on their own");
                    }
                    Err(_) => break,
                },
            }
        }
        let _ = subscriber.quit().await;
    });
}

/// How often a failed subscription is tried again.
const RESUBSCRIBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

async fn subscribe(subscriber: &Client, channels: &[String], sharded: bool) -> bool {
    if !subscriber.is_connected() {
        return false;
    }
    let r = if sharded {
        // Redis Cluster refuses an SSUBSCRIBE naming channels of different
        // slots (CROSSSLOT), and each kind's channel has its own hash tag:
        // one command per channel, each sent to the node of its slot.
        let mut r = Ok(());
        for channel in channels {
            r = subscriber.ssubscribe(channel.as_str()).await;
            if r.is_err() {
                break;
            }
        }
        r
    } else {
        subscriber.subscribe(channels.to_vec()).await
    };
    match r {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "subscribing to queue signals failed; trying again");
            false
        }
    }
}

fn handle(core: &Core, channel: &str, message: &str) {
    let Some(kind) = keys::kind_of_events(channel) else {
        return;
    };
    match Signal::parse(message) {
        Some(Signal::Work) => {
            if let Some(n) = core.wake.get(kind) {
                n.notify_one();
            }
        }
        Some(Signal::Cancel(id)) => {
            core.stop_job(&id, StopReason::Cancelled("cancelled by request".into()))
        }
        None => {}
    }
}
