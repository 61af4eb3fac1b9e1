// BullMQ 5, driven like `relay-bench jobs`, in the same three modes:
//
// - closed loop (default): N no-op jobs, 64 adds in flight;
// - open loop (--rate R): job k added at start + k/R whatever happened
//   before, latency from the scheduled time (finishedOn - due), jobs not
//   finished when the wait ends counted at that moment;
// - --find-rate: open-loop steps from --rate up by --step-factor, then
//   --refine bisections, for the highest rate with p99 <= --target-p99-ms and
//   every job completed; bounded by --budget seconds.
//
// W workers (separate processes, concurrency 50 each) run a processor that
// calls updateProgress once. Completions are counted from the queue
// (QueueEvents lost events under load here); latency is each job's
// finishedOn (set by the worker) minus the moment this process sent (closed)
// or scheduled (open) the add, as relay-bench does with finished_at.
//
// node bullmq-bench.js --jobs 20000 --workers 1 --concurrency 50
// node bullmq-bench.js --rate 500 --duration 10
// node bullmq-bench.js --find-rate --rate 250 --duration 5 --budget 240
'use strict';
const { spawn } = require('child_process');
const path = require('path');
const { Queue } = require('bullmq');
const Redis = require('ioredis');
const c = require('./common');

const opt = c.args({
  jobs: 20000, workers: 1, concurrency: 50, submitters: 64, timeout: 120,
  rate: 0, duration: 10, warmup: 1, 'max-in-flight': 4096,
  'find-rate': false, 'target-p99-ms': 50, 'step-factor': 1.5, refine: 3, 'max-rate': 50000, budget: 240,
});
const MIN_RATE = 1;
const CLOSE_ENOUGH = 1.03;

async function startWorkers(redisUrl, name) {
  const workers = [];
  for (let i = 0; i < opt.workers; i++) {
    const child = spawn(process.execPath, [path.join(__dirname, 'bullmq-worker.js'), redisUrl, name, String(opt.concurrency)], { stdio: ['ignore', 'pipe', 'inherit'] });
    process.on('exit', () => { try { child.kill('SIGKILL'); } catch (_) {} });
    await new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => { if (String(d).includes('ready')) resolve(); });
      setTimeout(() => reject(new Error('worker start timed out')), 20000);
    });
    workers.push(child);
  }
  return workers;
}

const add = (queue) => queue.add('sleep', { ms: 0, steps: 1 }, { removeOnComplete: false });

// Polls the queue's counts until `n` more than `base` jobs ended or the
// timeout passes; returns {completed, failed, lastUs} relative to base.
async function waitEnded(queue, base, n, timeoutS) {
  let completed = 0;
  let failed = 0;
  let lastUs = 0;
  await c.waitFor(async () => {
    const counts = await queue.getJobCounts('completed', 'failed');
    const done = counts.completed - base.completed;
    if (done > completed) lastUs = c.nowUs();
    completed = done;
    failed = counts.failed - base.failed;
    return completed + failed >= n;
  }, timeoutS * 1000, 'completions').catch((e) => console.error(e.message));
  return { completed, failed, lastUs };
}

async function finishedOn(queue) {
  const out = new Map();
  for (const job of await queue.getJobs(['completed'], 0, -1)) {
    if (job.finishedOn) out.set(job.id, job.finishedOn * 1000);
  }
  return out;
}

async function closed(queue, procs) {
  const sent = new Map();
  const h = c.histogram();
  const base = await queue.getJobCounts('completed', 'failed');
  const acc = c.account(procs);
  const startUs = c.nowUs();
  const start = Date.now();
  let next = 0;
  let errors = 0;
  async function lane() {
    while (next < opt.jobs) {
      next++;
      const t = c.nowUs();
      try {
        const job = await add(queue);
        sent.set(job.id, t);
      } catch (e) {
        if (errors++ < 5) console.error(e.message);
      }
    }
  }
  await Promise.all(Array.from({ length: opt.submitters }, lane));
  const submitSecs = (Date.now() - start) / 1000;
  const accepted = sent.size;
  const { completed, failed, lastUs } = await waitEnded(queue, base, accepted, opt.timeout);
  const { processes, cost } = acc();
  const fin = await finishedOn(queue);
  for (const [id, t] of sent) {
    const f = fin.get(id);
    if (f !== undefined) h.recordValue(Math.max(1, f - t));
  }
  return {
    scenario: 'jobs', jobs: opt.jobs, submitters: opt.submitters, accepted, submit_errors: errors, submit_secs: submitSecs,
    submits_per_s: Math.round(accepted / submitSecs), completed, failed, lost: accepted - completed - failed,
    completions_per_s: Math.round(completed / Math.max(1e-6, (lastUs - startUs) / 1e6)),
    submit_to_completed: c.latencyJson(h), processes, cost: cost([['job', completed]]),
  };
}

const sleepMs = (ms) => new Promise((r) => setTimeout(r, ms));
const yieldNow = () => new Promise((r) => setImmediate(r));

// One open-loop run at `rate`; leaves the queue without completed jobs.
async function openStep(queue, procs, rate) {
  rate = Math.max(0.1, rate);
  const maxInFlight = Math.max(1, opt['max-in-flight']);
  const warm = Math.round(rate * Math.max(0, opt.warmup));
  const n = warm + Math.max(1, Math.round(rate * opt.duration));
  const base = await queue.getJobCounts('completed', 'failed');
  const acc = c.account(procs);
  const due = new Map();
  const lag = c.histogram();
  const answer = c.histogram();
  let inFlight = 0;
  let errors = 0;
  const waiters = [];
  const release = () => { inFlight--; const w = waiters.shift(); if (w) w(); };
  const startUs = c.nowUs() + 20000;
  for (let k = 0; k < n; k++) {
    const atUs = startUs + (k * 1e6) / rate;
    const ahead = atUs - c.nowUs();
    if (ahead >= 1000) await sleepMs(Math.floor(ahead / 1000));
    else await yieldNow();
    while (inFlight >= maxInFlight) await new Promise((r) => waiters.push(r));
    lag.recordValue(Math.max(1, Math.round(c.nowUs() - atUs)));
    inFlight++;
    const measured = k >= warm;
    add(queue).then((job) => {
      answer.recordValue(Math.max(1, Math.round(c.nowUs() - atUs)));
      due.set(job.id, { atUs, measured });
    }, (e) => { if (errors++ < 5) console.error(e.message); }).finally(release);
  }
  while (inFlight > 0) await new Promise((r) => waiters.push(r));
  const submitSecs = (c.nowUs() - startUs) / 1e6;
  const accepted = due.size;
  const { completed, failed, lastUs } = await waitEnded(queue, base, accepted, opt.timeout);
  const gaveUpUs = c.nowUs();
  const { processes, cost } = acc();
  const fin = await finishedOn(queue);
  const h = c.histogram();
  let unfinished = 0;
  for (const [id, d] of due) {
    if (!d.measured) continue;
    let f = fin.get(id);
    if (f === undefined) { unfinished++; f = gaveUpUs; }
    h.recordValue(Math.max(1, Math.round(f - d.atUs)));
  }
  // The next step starts from an empty completed set (and getJobs stays small).
  await queue.clean(0, 0, 'completed');
  const incomplete = Math.max(0, accepted - completed - failed);
  const latency = c.latencyJson(h);
  return {
    scenario: 'jobs-open', rate, duration_s: opt.duration, warmup_s: opt.warmup, scheduled: n, measured: n - warm,
    max_in_flight: maxInFlight, accepted, submit_errors: errors, submit_secs: c.round(submitSecs, 2), completed, failed,
    incomplete, records_matched: fin.size, unfinished_counted_at_deadline: unfinished,
    completions_per_s: Math.round(completed / Math.max(1e-6, (lastUs - startUs) / 1e6)),
    submit_to_completed: latency, submit_answer: c.latencyJson(answer), schedule_lag: c.latencyJson(lag),
    processes, cost: cost([['job', completed]]),
    passed: latency.p99_ms <= opt['target-p99-ms'] && incomplete === 0 && errors === 0 && failed === 0,
  };
}

// The next rate of a sweep, as relay-bench's jobs sweep decides it.
function nextRate(last, best, fail, bisections) {
  const factor = Math.max(1.05, opt['step-factor']);
  if (fail === null) {
    if (last >= opt['max-rate']) return { done: 'reached --max-rate with p99 within target' };
    return { rate: Math.min(Math.round(last * factor), opt['max-rate']) };
  }
  if (best === null) {
    const r = Math.round(fail / factor);
    return r < MIN_RATE || r >= fail ? { done: 'no rate passed' } : { rate: r };
  }
  const mid = Math.round((best + fail) / 2);
  if (bisections >= opt.refine || fail / best <= CLOSE_ENOUGH || mid <= best || mid >= fail) return { done: 'refined' };
  return { rate: mid };
}

async function findRate(queue, procs) {
  const started = Date.now();
  let rate = Math.max(MIN_RATE, opt.rate || 250);
  let best = null;
  let fail = null;
  let bisections = 0;
  const steps = [];
  let stopped;
  for (;;) {
    if ((Date.now() - started) / 1000 + opt.warmup + opt.duration > opt.budget) { stopped = 'budget'; break; }
    const step = await openStep(queue, procs, rate);
    console.error(`find-rate: ${JSON.stringify({ rate, passed: step.passed, p99_ms: step.submit_to_completed.p99_ms, incomplete: step.incomplete, completions_per_s: step.completions_per_s, schedule_lag_max_ms: step.schedule_lag.max_ms })}`);
    steps.push(step);
    if (bisections > 0 || (best !== null && fail !== null)) bisections++;
    if (step.passed) best = best === null ? rate : Math.max(best, rate);
    else fail = fail === null ? rate : Math.min(fail, rate);
    if (step.incomplete > 0) { stopped = "a step's jobs did not all end within --timeout"; break; }
    const next = nextRate(rate, best, fail, bisections);
    if (next.done) { stopped = next.done; break; }
    rate = next.rate;
  }
  return {
    scenario: 'jobs-find-rate', target_p99_ms: opt['target-p99-ms'], best_rate: best, lowest_failing_rate: fail,
    stopped, sweep_secs: c.round((Date.now() - started) / 1000, 1), step_duration_s: opt.duration, steps,
  };
}

async function main() {
  const redis = await c.startRedis();
  const name = `bench-${Date.now().toString(16)}`;
  const workers = await startWorkers(redis.url, name);
  const queue = new Queue(name, { connection: new Redis(redis.url, { maxRetriesPerRequest: null }) });
  const procs = workers.map((w, i) => ({ name: `worker${i + 1}`, role: 'worker', pid: w.pid }));
  if (redis.pid) procs.push({ name: 'redis', role: 'redis', pid: redis.pid });
  let report;
  if (opt['find-rate']) report = await findRate(queue, procs);
  else if (opt.rate > 0) report = await openStep(queue, procs, opt.rate);
  else report = await closed(queue, procs);
  console.log(JSON.stringify({ ...report, peer: 'bullmq', workers: opt.workers, concurrency: opt.concurrency }, null, 2));
  process.exit(0);
}
const hardStop = setTimeout(() => { console.error('bullmq-bench: hard time limit reached'); process.exit(2); }, 840000);
hardStop.unref();
main().catch((e) => { console.error(e); process.exit(1); });
