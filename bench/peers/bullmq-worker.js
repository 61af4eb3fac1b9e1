// A BullMQ 5 worker: no-op processor that calls updateProgress once.
// Usage: node bullmq-worker.js REDIS_URL QUEUE CONCURRENCY
'use strict';
const { Worker } = require('bullmq');
const Redis = require('ioredis');

const [redisUrl, queue, concurrency] = process.argv.slice(2);
const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
const worker = new Worker(queue, async (job) => {
  await job.updateProgress(100);
  return { slept_ms: 0 };
}, { connection, concurrency: Number(concurrency) });
worker.on('ready', () => console.log('ready'));
