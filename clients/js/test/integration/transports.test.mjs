// Fallback through a proxy that refuses WebSocket upgrades, the way back to
// WebSocket, token expiry (4001), oversized frames (1009), publishing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { RelayClient } from '../../dist/index.js';
import { Stack, assertTools, eventually, jwt, publish, requires, sleep, startGateway, startNginx, startRedis } from '../helpers/env.mjs';

const req = requires('redis', 'nginx', 'binaries');

describe('transports', { skip: req.skip }, () => {
  const stack = new Stack();
  let redis, gws, pubGw;
  const clients = [];
  const newClient = (opts) => {
    const c = new RelayClient({ WebSocket, reconnect: { initialMs: 100, maxMs: 1000 }, connectTimeoutMs: 3000, pollWaitS: 5, ...opts });
    clients.push(c);
    return c;
  };

  before(async () => {
    assertTools(req);
    redis = stack.add(await startRedis());
    gws = [await startGateway({ redis }), await startGateway({ redis })];
    gws.forEach((g) => stack.add(g));
    pubGw = stack.add(await startGateway({ redis, env: { RELAY_MAX_FRAME_BYTES: '2048' } }));
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await stack.stop();
  });

  for (const fallback of ['sse', 'poll']) {
    it(`WebSocket refused by the proxy -> ${fallback}, gateways killed meanwhile, then back to WebSocket: nothing lost`, async () => {
      const nginx = stack.add(await startNginx({ gateways: gws, websocket: false }));
      const topic = `room:fb-${fallback}`;
      const client = newClient({
        url: nginx.url,
        token: jwt({ sub: 'carol', topics: ['room:*'] }),
        transports: ['websocket', fallback],
        upgradeRetryMs: 1500,
      });
      const kinds = [];
      client.on('state', (s) => s.state === 'connected' && kinds.push(s.transport));
      const got = [];
      const sub = client.subscribe(topic, { onEvent: (e) => got.push(e.data.n) });
      await eventually(() => client.transport === fallback && sub.position, 20_000, `the ${fallback} fallback`);
      const N = 300;
      let i = 0;
      const pumping = (async () => {
        for (; i < N; i++) {
          await publish([pubGw], topic, 'msg', { n: i });
          await sleep(8);
        }
      })();
      await eventually(() => got.length >= 50, 20_000, 'events on the fallback');
      for (const g of gws) {
        await g.kill();
        await sleep(300);
        await g.start();
      }
      await eventually(() => i >= 200, 30_000, 'more events published');
      await nginx.configure({ websocket: true });
      await eventually(() => client.transport === 'websocket', 20_000, 'the way back to WebSocket');
      await pumping;
      await eventually(() => got.length >= N, 30_000, `all ${N} events (got ${got.length})`);
      assert.deepEqual(got, Array.from({ length: N }, (_, k) => k), 'every event once, in order, across transports');
      assert.equal(kinds[0], fallback);
      assert.equal(kinds.at(-1), 'websocket');
      client.close();
      await nginx.stop();
    });
  }

  it('4001: a token that expires is refreshed through getToken, with no event lost', async () => {
    const [gw] = gws;
    let issued = 0;
    const client = newClient({
      url: gw.url,
      // Each token lives 2 s: the gateway closes the socket with 4001 at its exp.
      getToken: () => (issued++, jwt({ sub: 'dave', topics: ['room:*'], exp: Math.floor(Date.now() / 1000) + 2 })),
    });
    const codes = [];
    client.on('state', (s) => s.closeCode && codes.push(s.closeCode));
    const got = [];
    const sub = client.subscribe('room:exp', { onEvent: (e) => got.push(e.data.n) });
    await eventually(() => sub.position, 20_000, 'the subscription');
    const N = 60;
    for (let i = 0; i < N; i++) {
      await publish([pubGw], 'room:exp', 'msg', { n: i });
      await sleep(80);
    }
    await eventually(() => got.length >= N, 20_000, 'all events');
    assert.ok(codes.includes(4001), `closed with 4001: ${codes}`);
    assert.ok(issued >= 3, `getToken called ${issued} times`);
    assert.deepEqual(got, Array.from({ length: N }, (_, k) => k));
  });

  it('SSE: a stream that ends at the token\'s exp is reopened with a fresh token, with no event lost', async () => {
    const [gw] = gws;
    let issued = 0;
    const client = newClient({
      url: gw.url,
      transports: ['sse'],
      getToken: () => (issued++, jwt({ sub: 'erin', topics: ['room:*'], exp: Math.floor(Date.now() / 1000) + 2 })),
    });
    const got = [];
    const sub = client.subscribe('room:sse-exp', { onEvent: (e) => got.push(e.data.n) });
    await eventually(() => sub.position && client.state === 'connected', 20_000, 'the stream');
    const N = 50;
    for (let i = 0; i < N; i++) {
      await publish([pubGw], 'room:sse-exp', 'msg', { n: i });
      await sleep(100);
    }
    await eventually(() => got.length >= N, 20_000, 'all events');
    assert.ok(issued >= 3, `getToken called ${issued} times`);
    assert.deepEqual(got, Array.from({ length: N }, (_, k) => k));
  });

  it('1009: a frame over the gateway\'s limit is reported, the publish fails, and the client backs off then reconnects', async () => {
    const client = newClient({ url: pubGw.url, token: jwt({ sub: 'frank', publish: ['room:*'] }), maxFrameBytes: 1 << 20 });
    const seen = [];
    client.on('state', (s) => seen.push(s));
    const errors = [];
    client.on('error', (e) => errors.push(e.code));
    assert.ok((await client.publish('room:big', 'small', { a: 1 })).event_id);
    const big = await client.publish('room:big', 'big', { s: 'x'.repeat(8000) }).then(
      () => 'published',
      (e) => e.code,
    );
    assert.equal(big, 'UNCONFIRMED');
    await eventually(() => errors.includes('CLOSE_1009'), 10_000, 'the 1009 report');
    const d = seen.find((s) => s.closeCode === 1009);
    assert.ok(d.retryInMs >= 0 && d.error.code === 'CLOSE_1009');
    const again = await client.publish('room:big', 'small', { a: 2 });
    assert.ok(again.event_id, 'publishing works after the reconnect');
  });

  it('publishes over WebSocket and over POST /v1/send, queued while offline', async () => {
    const [gw] = gws;
    const token = jwt({ sub: 'gina', topics: ['room:*'], publish: ['room:*'] });
    const reader = newClient({ url: gw.url, token });
    const got = [];
    const sub = reader.subscribe('room:pub', { onEvent: (e) => got.push(`${e.type}:${e.data.n}`) });
    await eventually(() => sub.position, 20_000, 'the subscription');
    const ws = newClient({ url: gw.url, token });
    const http = newClient({ url: gw.url, token, transports: ['poll'] });
    // Both publish before they have connected: the queue holds, then sends in order.
    const results = await Promise.all([
      ws.publish('room:pub', 'ws', { n: 1 }),
      ws.publish('room:pub', 'ws', { n: 2 }),
      http.publish('room:pub', 'http', { n: 1 }),
      http.publish('room:pub', 'http', { n: 2 }),
    ]);
    assert.ok(results.every((r) => /^\d+-\d+$/.test(r.event_id)));
    const denied = await ws.publish('other:x', 'ws', {}).catch((e) => e.code);
    assert.equal(denied, 'FORBIDDEN');
    await eventually(() => got.length === 4, 10_000, 'the four events');
    assert.deepEqual(got.filter((g) => g.startsWith('ws')), ['ws:1', 'ws:2']);
    assert.deepEqual(got.filter((g) => g.startsWith('http')), ['http:1', 'http:2']);
  });

  it('a refused subscription ends with onError, the others go on (on every transport)', async () => {
    const [gw] = gws;
    for (const transport of ['websocket', 'sse', 'poll']) {
      const client = newClient({ url: gw.url, token: jwt({ sub: 'hank', topics: ['room:*'] }), transports: [transport] });
      const errors = [];
      const got = [];
      client.subscribe('secret:1', { onEvent() {}, onError: (e) => errors.push(e.code) });
      const ok = client.subscribe('room:ok', { onEvent: (e) => got.push(e.data.n) });
      await eventually(() => errors.length && ok.position && client.state === 'connected', 20_000, `${transport}: the refusal`);
      assert.deepEqual(errors, ['FORBIDDEN'], transport);
      await publish([pubGw], 'room:ok', 'msg', { n: transport });
      await eventually(() => got.includes(transport), 10_000, `${transport}: the allowed topic's event`);
      client.close();
    }
  });
});
