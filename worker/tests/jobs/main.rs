//! Process-level tests of the job system: real Redis, real PostgreSQL
//! (started by the test kit in temporary directories on free ports), real
//! `relay-worker` processes, and the same job operations the gateway uses.
//!
//! - [`crash`]: a worker killed mid-job; the job completes elsewhere.
//! - [`fairness`]: a per-owner limit on running jobs lets other owners' jobs run.
//! - [`lifecycle`]: retries, dead letters, timeouts, delays, idempotency, the sweep.
//! - [`cancel`]: cancelling running and queued jobs.
//! - [`cluster`]: the job scenarios on a real Redis Cluster.
//! - [`events`]: every job event names its job (and state events its kind).
//! - [`outbox`]: the terminal event survives a worker killed or Redis stopped after the end.
//! - [`order`]: priorities, and graceful shutdown giving jobs back.
//! - [`outage`]: PostgreSQL stopped and started again.
//! - [`remote`]: the shared attempt engine as a worker over HTTP uses it.
//! - [`reconcile`]: the `reconcile` kind against counts computed here.
//! - [`uploads`]: every kind's uploads are its owner's; custom kinds read them through the context.
//! - [`rest`]: the job API through a real gateway process.

mod cancel;
mod cluster;
mod crash;
mod events;
mod fairness;
mod lifecycle;
mod order;
mod outage;
mod outbox;
mod reconcile;
mod remote;
mod rest;
mod support;
mod uploads;
