// socket.io 4 + @socket.io/redis-adapter, driven like `relay-bench fanout`
// and `relay-bench connections`: two servers, clients spread over them, one
// room per topic, an @socket.io/redis-emitter publishing {t, seq} at a fixed
// rate. Latency from the timestamp in the payload, HDR percentiles.
//
// node socketio-bench.js fanout --clients 2000 --rate 125 --duration 10 --servers 2
// node socketio-bench.js connections --clients 10000 --servers 1
'use strict';
const { spawn } = require('child_process');
const path = require('path');
const { io } = require('socket.io-client');
const { Emitter } = require('@socket.io/redis-emitter');
const Redis = require('ioredis');
const c = require('./common');

const mode = process.argv[2];
const opt = c.args({ clients: 2000, rate: 125, duration: 10, servers: 2, topics: 1, drain: 10, 'connect-concurrency': 128, settle: 3 });

async function startServers(redisUrl, n) {
  const servers = [];
  for (let i = 0; i < n; i++) {
    const port = await c.freePort();
    const child = spawn(process.execPath, [path.join(__dirname, 'socketio-server.js'), String(port), redisUrl], { stdio: ['ignore', 'pipe', 'inherit'] });
    process.on('exit', () => { try { child.kill('SIGKILL'); } catch (_) {} });
    await new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => { if (String(d).includes('ready')) resolve(); });
      child.on('exit', (code) => reject(new Error(`server exited ${code}`)));
      setTimeout(() => reject(new Error('server start timed out')), 20000);
    });
    servers.push({ url: `http://127.0.0.1:${port}`, pid: child.pid, child });
  }
  return servers;
}

// Opens `n` clients (bounded concurrency), each joined to its room.
async function openClients(servers, n, rooms, onEvent) {
  const clients = new Array(n);
  let next = 0;
  let failed = 0;
  async function one(i) {
    const s = io(servers[i % servers.length].url, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 20000 });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connect timeout')), 30000);
      s.on('connect_error', (e) => { clearTimeout(timer); reject(e); });
      s.on('connect', () => {
        s.emit('join', rooms[i % rooms.length], () => { clearTimeout(timer); resolve(); });
      });
    });
    if (onEvent) s.on('ev', (d) => onEvent(i, d));
    clients[i] = s;
  }
  async function lane() {
    while (next < n) {
      const i = next++;
      try { await one(i); } catch (e) { if (failed++ < 5) console.error(`client ${i}: ${e.message}`); }
    }
  }
  await Promise.all(Array.from({ length: opt['connect-concurrency'] }, lane));
  return { clients, failed };
}

async function fanout() {
  const redis = await c.startRedis();
  const servers = await startServers(redis.url, opt.servers);
  const id = Date.now().toString(16);
  const rooms = Array.from({ length: opt.topics }, (_, t) => `bench.fanout.${id}.${t}`);
  const total = Math.round(opt.rate * opt.duration);
  const perTopic = Math.ceil(total / opt.topics);
  const h = c.histogram();
  const seen = [];
  let delivered = 0;
  let lastUs = 0;
  const t0 = Date.now();
  const { clients, failed } = await openClients(servers, opt.clients, rooms, (i, d) => {
    const now = c.nowUs();
    h.recordValue(Math.max(1, now - d.t));
    const bits = seen[i] || (seen[i] = new Uint8Array(perTopic));
    if (d.seq < perTopic) bits[d.seq] = 1;
    delivered++;
    lastUs = now;
  });
  const connectSecs = (Date.now() - t0) / 1000;
  const connected = clients.filter(Boolean).length;
  const procs = servers.map((s, i) => ({ name: `server${i + 1}`, role: 'server', pid: s.pid }));
  if (redis.pid) procs.push({ name: 'redis', role: 'redis', pid: redis.pid });
  const acc = c.account(procs);

  const emitter = new Emitter(new Redis(redis.url));
  const startUs = c.nowUs();
  const start = Date.now();
  let k = 0;
  let behind = false;
  await new Promise((resolve) => {
    function tick() {
      const due = Math.floor(((Date.now() - start) / 1000) * opt.rate);
      if (due - k > opt.rate / 10) behind = true;
      while (k < Math.min(due, total)) {
        const t = k % opt.topics;
        emitter.to(rooms[t]).emit('ev', { t: c.nowUs(), seq: Math.floor(k / opt.topics) });
        k++;
      }
      if (k >= total) return resolve();
      setTimeout(tick, 1);
    }
    tick();
  });
  const publishSecs = (Date.now() - start) / 1000;
  const perTopicClients = rooms.map((_, t) => clients.filter((s, i) => s && i % opt.topics === t).length);
  const expected = rooms.reduce((a, _, t) => a + perTopicClients[t] * Math.ceil((total - t) / opt.topics), 0);
  await c.waitFor(() => delivered >= expected, opt.drain * 1000, 'deliveries').catch(() => {});
  const { processes, cost } = acc();
  let lost = 0;
  let lossy = 0;
  clients.forEach((s, i) => {
    if (!s) return;
    const t = i % opt.topics;
    const want = Math.ceil((total - t) / opt.topics);
    const bits = seen[i] || new Uint8Array(perTopic);
    let got = 0;
    for (let q = 0; q < want; q++) got += bits[q];
    lost += want - got;
    if (want > got) lossy++;
  });
  const report = {
    scenario: 'fanout', peer: 'socket.io', servers: opt.servers, clients: opt.clients, connected, connect_failures: failed,
    connect_secs: connectSecs, topics: opt.topics, rate: opt.rate, duration_s: opt.duration, published: total,
    publisher_fell_behind: behind, publish_secs: publishSecs, publishes_per_s: Math.round(total / Math.max(1e-6, publishSecs)),
    delivered, expected,
    deliveries_per_s: Math.round(delivered / Math.max(1e-6, (lastUs - startUs) / 1e6)),
    lost, clients_with_losses: lossy, latency: c.latencyJson(h), processes,
    cost: cost([['delivery', delivered], ['publish', total]]),
  };
  console.log(JSON.stringify(report, null, 2));
  clients.forEach((s) => s && s.close());
  process.exit(0);
}

async function connections() {
  const redis = await c.startRedis();
  const servers = await startServers(redis.url, opt.servers);
  const rooms = Array.from({ length: 100 }, (_, t) => `bench.conn.${t}`);
  // Warm up each server with one client.
  const warm = await openClients(servers, servers.length, rooms, null);
  await new Promise((r) => setTimeout(r, 500));
  const before = servers.map((s) => c.rssKib(s.pid));
  const t0 = Date.now();
  const { clients, failed } = await openClients(servers, opt.clients, rooms, null);
  const connectSecs = (Date.now() - t0) / 1000;
  const procs = servers.map((s, i) => ({ name: `server${i + 1}`, role: 'server', pid: s.pid }));
  if (redis.pid) procs.push({ name: 'redis', role: 'redis', pid: redis.pid });
  const acc = c.account(procs);
  await new Promise((r) => setTimeout(r, opt.settle * 1000));
  const { processes, cost } = acc();
  const connected = clients.filter(Boolean).length;
  const report = {
    scenario: 'connections', peer: 'socket.io', clients: opt.clients, connected, connect_failures: failed,
    connect_secs: connectSecs,
    servers: servers.map((s, i) => {
      const here = clients.filter((x, j) => x && j % servers.length === i).length;
      const after = c.rssKib(s.pid);
      return { pid: s.pid, rss_before_mib: before[i] / 1024, rss_after_mib: after / 1024, connections: here,
        rss_per_connection_kib: Math.round(((after - before[i]) / Math.max(1, here)) * 100) / 100 };
    }),
    connects_per_s: Math.round(connected / Math.max(1e-6, connectSecs)),
    processes,
    cost: cost([['idle connection-second', Math.round(connected * opt.settle)]]),
  };
  console.log(JSON.stringify(report, null, 2));
  clients.concat(warm.clients).forEach((s) => s && s.close());
  process.exit(0);
}

const run = { fanout, connections }[mode];
if (!run) {
  console.error('usage: node socketio-bench.js fanout|connections [--clients N] [--rate R] [--duration S] [--servers G] [--topics N]');
  process.exit(64);
}
const hardStop = setTimeout(() => { console.error('socketio-bench: hard time limit reached'); process.exit(2); }, 600000);
hardStop.unref();
run().catch((e) => { console.error(e); process.exit(1); });
