// Shared helpers for the peer benchmarks: /proc CPU and RSS (and what a run
// costs per unit of work, as relay-bench's `cost` reports it), HDR
// percentiles, a throwaway redis-server.
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

const round = (x, places) => Math.round(x * 10 ** places) / 10 ** places;

// CPU of one process (not its children) over an interval: seconds, and
// percent of one core.
function meter(name, pid, role = 'server') {
  const t0 = ticks(pid);
  const start = process.hrtime.bigint();
  return () => {
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    const cpuS = (ticks(pid) - t0) / TICKS;
    return {
      name,
      role,
      pid,
      cpu_s: round(cpuS, 2),
      cpu_percent: round((cpuS / secs) * 100, 1),
      rss_mib: round(rssKib(pid) / 1024, 1),
      secs,
    };
  };
}

// Meters for `procs` ([{name, role, pid}]) and this process (role `bench`,
// the load generator), started together. finish() gives
// {processes, cost(units)} where cost([['delivery', n], ...]) is shaped like
// relay-bench's: {window_s, cpu_s: {role..., servers, total}, per: [{unit,
// count, cpu_us: {role..., servers, total}}]}.
function account(procs) {
  const meters = procs.concat([{ name: 'bench', role: 'bench', pid: process.pid }])
    .filter((p) => p.pid)
    .map((p) => meter(p.name, p.pid, p.role));
  return () => {
    const usage = meters.map((m) => m());
    const secs = usage.length ? usage[0].secs : 0;
    const by = { servers: 0, total: 0 };
    for (const u of usage) {
      by[u.role] = (by[u.role] || 0) + u.cpu_s;
      by.total += u.cpu_s;
      if (u.role !== 'bench') by.servers += u.cpu_s;
    }
    const processes = usage.map(({ secs: _s, ...u }) => u);
    const cost = (units) => ({
      window_s: round(secs, 3),
      cpu_s: Object.fromEntries(Object.entries(by).map(([r, s]) => [r, round(s, 3)])),
      per: units.map(([unit, count]) => ({
        unit,
        count,
        cpu_us: Object.fromEntries(Object.entries(by).map(([r, s]) => [r, count > 0 ? round((s * 1e6) / count, 3) : null])),
      })),
    });
    return { processes, cost };
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
    p90_ms: ms(h.getValueAtPercentile(90)),
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
    const m = argv[i].match(/^--([a-z0-9-]+)$/);
    if (!m) continue;
    const key = m[1];
    if (typeof defaults[key] === 'boolean') {
      out[key] = true;
      continue;
    }
    const v = argv[i + 1];
    out[key] = typeof defaults[key] === 'number' ? Number(v) : v;
    i++;
  }
  return out;
}

module.exports = { meter, account, round, histogram, latencyJson, nowUs, freePort, waitFor, startRedis, args, rssKib };
