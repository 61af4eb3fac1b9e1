// No event lost across gateway kills, drains, frozen gateways and a Redis
// restart: real relay-gateway processes behind nginx, a real redis-server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { RelayClient } from '../../dist/index.js';
import { Stack, assertTools, eventually, jwt, publish, requires, sleep, startGateway, startNginx, startRedis } from '../helpers/env.mjs';

const req = requires('redis', 'nginx', 'binaries');

/** Publishes `n` events `{n: i}` one after another through `gw` (never killed), spaced by `ms`. */
async function pump(gw, topic, n, ms = 5) {
  for (let i = 0; i < n; i++) {
    await publish([gw], topic, 'msg', { n: i });
    if (ms) await sleep(ms);
  }
}

function watch(client, topic) {
  const got = [];
  const resets = [];
  const sub = client.subscribe(topic, { onEvent: (e) => got.push(e), onReset: (r) => resets.push(r) });
  return { got, resets, sub };
}

function assertComplete(got, n) {
  assert.deepEqual(
    got.map((e) => e.data.n),
    Array.from({ length: n }, (_, i) => i),
    'every event once, in order',
  );
}

const states = (client) => {
  const list = [];
  client.on('state', (s) => list.push(s));
  return list;
};

/** The gateway (of these) that holds the client's WebSocket. */
const holder = (gws) =>
  eventually(async () => {
    for (const g of gws) if ((await g.connections()) > 0) return g;
  }, 20_000, 'a gateway holding the connection');

describe('resume across gateways (WebSocket through nginx)', { skip: req.skip }, () => {
  const stack = new Stack();
  let redis, gws, pubGw, nginx;
  const clients = [];
  const newClient = async (opts = {}) => {
    // The previous test's client is gone: `holder` finds this one's gateway.
    clients.splice(0).forEach((c) => c.close());
    await eventually(async () => (await Promise.all(gws.map((g) => g.connections()))).every((n) => n === 0), 20_000, 'no connection left');
    const c = new RelayClient({
      url: nginx.url,
      WebSocket,
      token: jwt({ sub: 'alice', topics: ['room:*'] }),
      reconnect: { initialMs: 100, maxMs: 1000 },
      connectTimeoutMs: 3000,
      ...opts,
    });
    clients.push(c);
    return c;
  };

  before(async () => {
    assertTools(req);
    redis = stack.add(await startRedis());
    gws = [await startGateway({ redis, env: { RELAY_HEARTBEAT: '2s' } }), await startGateway({ redis, env: { RELAY_HEARTBEAT: '2s' } })];
    gws.forEach((g) => stack.add(g));
    pubGw = stack.add(await startGateway({ redis }));
    nginx = stack.add(await startNginx({ gateways: gws }));
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await stack.stop();
  });

  it('a gateway killed mid-stream: nothing lost, nothing twice, in order', async () => {
    const client = await newClient();
    const seen = states(client);
    const w = watch(client, 'room:kill');
    await eventually(() => w.sub.position, 20_000, 'the subscription');
    const N = 400;
    const pumping = pump(pubGw, 'room:kill', N);
    await eventually(() => w.got.length >= 60, 20_000, 'events before the kill');
    const first = await holder(gws);
    await first.kill();
    await eventually(() => w.got.length >= 180 && client.state === 'connected', 30_000, 'events after the kill');
    await first.start();
    const second = await holder(gws);
    await second.kill();
    await pumping;
    await eventually(() => w.got.length >= N, 30_000, `all ${N} events (got ${w.got.length})`);
    await second.start();
    assertComplete(w.got, N);
    assert.ok(seen.filter((s) => s.state === 'disconnected').length >= 1, 'the connection did drop');
    assert.equal(w.resets.length, 0, 'the history held: no reset');
  });

  it('a draining gateway (SIGTERM) closes with 4000 and the client resumes elsewhere at once', async () => {
    const client = await newClient();
    const seen = states(client);
    const w = watch(client, 'room:drain');
    await eventually(() => w.sub.position, 20_000, 'the subscription');
    const N = 200;
    const pumping = pump(pubGw, 'room:drain', N);
    await eventually(() => w.got.length >= 40, 20_000, 'events before the drain');
    const g = await holder(gws);
    g.proc.signal('SIGTERM');
    await pumping;
    await eventually(() => w.got.length >= N, 30_000, `all ${N} events`);
    const drained = seen.find((s) => s.closeCode === 4000);
    assert.ok(drained, `a 4000 close was seen: ${JSON.stringify(seen)}`);
    assert.equal(drained.retryInMs, 0, 'reconnects at once');
    assertComplete(w.got, N);
    await g.proc.exited;
    await g.start();
  });

  it('a frozen gateway (SIGSTOP) is given up within two heartbeats, and the stream goes on', async () => {
    const client = await newClient();
    const seen = states(client);
    const w = watch(client, 'room:frozen');
    await eventually(() => w.sub.position && client.state === 'connected', 20_000, 'the subscription');
    const N = 150;
    const pumping = pump(pubGw, 'room:frozen', N, 10);
    await eventually(() => w.got.length >= 30, 20_000, 'events before the freeze');
    const g = await holder(gws);
    g.proc.signal('SIGSTOP');
    const frozenAt = Date.now();
    const lost = await eventually(() => seen.find((s) => s.state === 'disconnected'), 20_000, 'the client to give up');
    const after = Date.now() - frozenAt;
    assert.equal(lost.reason, 'no answer for two heartbeats');
    // heartbeat_ms is 2000: found two intervals after the last frame at
    // most (the reason says it was the heartbeat), with slack for a loaded machine.
    assert.ok(after < 2 * 2000 + 3000, `found dead after ${after} ms`);
    await pumping;
    await eventually(() => w.got.length >= N, 40_000, `all ${N} events`);
    assertComplete(w.got, N);
    g.proc.signal('SIGCONT');
  });
});

describe('a Redis restart gives recovered:false', { skip: req.skip }, () => {
  for (const transport of ['websocket', 'sse', 'poll']) {
    it(`${transport}: onReset, then the new history's events`, async () => {
      assertTools(req);
      const stack = new Stack();
      let client;
      try {
        const redis = stack.add(await startRedis());
        const gw = stack.add(await startGateway({ redis }));
        client = new RelayClient({
          url: gw.url,
          WebSocket,
          transports: [transport],
          token: jwt({ sub: 'bob', topics: ['feed:*'] }),
          reconnect: { initialMs: 100, maxMs: 500 },
          pollWaitS: 2,
        });
        const w = watch(client, 'feed:1');
        await eventually(() => w.sub.position && client.state === 'connected', 20_000, 'the subscription');
        for (let i = 0; i < 3; i++) await publish([gw], 'feed:1', 'msg', { n: i });
        await eventually(() => w.got.length === 3, 20_000, 'the first events');
        await redis.restart();
        // Publishing again creates the topic's new epoch; the client learns
        // that its position belongs to the old one.
        let k = 100;
        await eventually(async () => {
          await publish([gw], 'feed:1', 'msg', { n: k++ });
          return w.resets.length >= 1;
        }, 30_000, 'onReset');
        const mark = w.got.length;
        await publish([gw], 'feed:1', 'msg', { n: 999 });
        await eventually(() => w.got.slice(mark).some((e) => e.data.n === 999), 20_000, 'an event after the reset');
        assert.deepEqual(w.got.slice(0, 3).map((e) => e.data.n), [0, 1, 2]);
        const ns = w.got.map((e) => e.data.n);
        assert.equal(new Set(ns).size, ns.length, 'no event twice');
        assert.equal(w.resets[0].topic, 'feed:1');
      } finally {
        client?.close();
        await stack.stop();
      }
    });
  }
});
