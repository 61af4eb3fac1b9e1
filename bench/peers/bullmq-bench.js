// BullMQ 5, driven like `relay-bench jobs`: submit N no-op jobs with 64 adds
// in flight, W workers (separate processes, concurrency 50 each), count
// completions through QueueEvents, submit-to-completed latency per job.
//
// node bullmq-bench.js --jobs 20000 --workers 1 --concurrency 50
'use strict';
const { spawn } = require('child_process');
const path = require('path');
const { Queue } = require('bullmq');
const Redis = require('ioredis');
const c = require('./common');

const opt = c.args({ jobs: 20000, workers: 1, concurrency: 50, submitters: 64, timeout: 120 });

async function main() {
  const redis = await c.startRedis();
  const name = `bench-${Date.now().toString(16)}`;
  const workers = [];
  for (let i = 0; i < opt.workers; i++) {
    const child = spawn(process.execPath, [path.join(__dirname, 'bullmq-worker.js'), redis.url, name, String(opt.concurrency)], { stdio: ['ignore', 'pipe', 'inherit'] });
    process.on('exit', () => { try { child.kill('SIGKILL'); } catch (_) {} });
    await new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => { if (String(d).includes('ready')) resolve(); });
      setTimeout(() => reject(new Error('worker start timed out')), 20000);
    });
    workers.push(child);
  }
  const conn = () => new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(name, { connection: conn() });
  // Completions are counted from the queue (QueueEvents lost events under
  // load here), and each job's latency is its finishedOn (set by the worker)
  // minus the moment this process sent the add, as relay-bench does with
  // the job record's finished_at.
  const sent = new Map();
  const h = c.histogram();
  const meters = workers.map((w, i) => c.meter(`worker${i + 1}`, w.pid));
  if (redis.pid) meters.push(c.meter('redis', redis.pid));
  const startUs = c.nowUs();
  const start = Date.now();
  let next = 0;
  let errors = 0;
  async function lane() {
    while (next < opt.jobs) {
      next++;
      const t = c.nowUs();
      try {
        const job = await queue.add('sleep', { ms: 0, steps: 1 }, { removeOnComplete: false });
        sent.set(job.id, t);
      } catch (e) {
        if (errors++ < 5) console.error(e.message);
      }
    }
  }
  await Promise.all(Array.from({ length: opt.submitters }, lane));
  const submitSecs = (Date.now() - start) / 1000;
  const accepted = sent.size;
  let completed = 0;
  let failed = 0;
  let lastUs = 0;
  await c.waitFor(async () => {
    const counts = await queue.getJobCounts('completed', 'failed');
    if (counts.completed > completed) lastUs = c.nowUs();
    completed = counts.completed;
    failed = counts.failed;
    return completed + failed >= accepted;
  }, opt.timeout * 1000, 'completions').catch((e) => console.error(e.message));
  const done = await queue.getJobs(['completed'], 0, -1);
  for (const job of done) {
    const t = sent.get(job.id);
    if (t !== undefined && job.finishedOn) h.recordValue(Math.max(1, job.finishedOn * 1000 - t));
  }
  const usage = meters.map((m) => m());
  console.log(JSON.stringify({
    scenario: 'jobs', peer: 'bullmq', jobs: opt.jobs, accepted, submit_errors: errors, submit_secs: submitSecs,
    submits_per_s: Math.round(accepted / submitSecs), completed, failed, lost: accepted - completed - failed,
    completions_per_s: Math.round(completed / Math.max(1e-6, (lastUs - startUs) / 1e6)),
    submit_to_completed: c.latencyJson(h), workers: opt.workers, concurrency: opt.concurrency, processes: usage,
  }, null, 2));
  process.exit(0);
}
const hardStop = setTimeout(() => { console.error('bullmq-bench: hard time limit reached'); process.exit(2); }, 600000);
hardStop.unref();
main().catch((e) => { console.error(e); process.exit(1); });
