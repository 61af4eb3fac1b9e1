// Shared helpers for the peer benchmarks: /proc CPU and RSS, HDR percentiles,
// a throwaway redis-server.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const net = require('net');
const hdr = require('hdr-histogram-js');

const TICKS = 100; // USER_HZ

function ticks(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch (_) {
    return 0;
  }
}

function rssKib(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
    return m ? Number(m[1]) : 0;
  } catch (_) {
    return 0;
  }
}

// CPU of a process over an interval, in percent of one core.
function meter(name, pid) {
  const t0 = ticks(pid);
  const start = process.hrtime.bigint();
  return () => {
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    return {
      name,
      pid,
      cpu_percent: Math.round(((ticks(pid) - t0) / TICKS / secs) * 1000) / 10,
      rss_mib: Math.round((rssKib(pid) / 1024) * 10) / 10,
    };
  };
}

function histogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600e6, numberOfSignificantValueDigits: 3 });
}

function latencyJson(h) {
  const ms = (us) => Math.round((us / 1000) * 100) / 100;
  return {
    count: h.totalCount,
    p50_ms: ms(h.getValueAtPercentile(50)),
    p99_ms: ms(h.getValueAtPercentile(99)),
    p999_ms: ms(h.getValueAtPercentile(99.9)),
    max_ms: ms(h.maxValue),
  };
}

// Microseconds since the Unix epoch (same clock as relay-bench's `t`).
const origin = Date.now() * 1000 - Number(process.hrtime.bigint() / 1000n);
function nowUs() {
  return origin + Number(process.hrtime.bigint() / 1000n);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function waitFor(cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// A redis-server without persistence on a free port; killed on exit.
async function startRedis() {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, pid: null, stop() {} };
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peers-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const stop = () => { try { child.kill('SIGKILL'); } catch (_) {} };
  process.on('exit', stop);
  await waitFor(() => new Promise((res) => {
    const s = net.connect(port, '127.0.0.1', () => { s.end(); res(true); });
    s.on('error', () => res(false));
  }), 10000, 'redis');
  return { url: `redis://127.0.0.1:${port}`, port, pid: child.pid, stop };
}

function args(defaults) {
  const out = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const m = argv[i].match(/^--([a-z-]+)$/);
    if (!m) continue;
    const key = m[1];
    const v = argv[i + 1];
    out[key] = typeof defaults[key] === 'number' ? Number(v) : v;
    i++;
  }
  return out;
}

module.exports = { meter, histogram, latencyJson, nowUs, freePort, waitFor, startRedis, args, rssKib };
