// Publishing: over the WebSocket, over POST /v1/send, the bounded offline queue, per-publish outcomes.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { RelayClient } from '../../dist/index.js';
import { FakeServer, fakeFetch, flush } from '../helpers/fake.mjs';

let server;
let client;
beforeEach(() => {
  server = new FakeServer();
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
});
afterEach(() => {
  client?.close();
  mock.timers.reset();
});
const make = (opts = {}) =>
  (client = new RelayClient({ url: 'http://relay.test', WebSocket: server.WebSocket, transports: ['websocket'], ...opts }));
const outcome = (p) => p.then((r) => ({ ok: r.event_id }), (e) => ({ err: e.code }));

describe('publish', () => {
  it('queues while offline, sends in order on connect, and reports each outcome', async () => {
    make();
    const a = outcome(client.publish('chat:1', 'message', { n: 1 }));
    const b = outcome(client.publish('chat:1', 'message', { n: 2 }));
    await flush();
    const ws = server.last;
    assert.equal(ws.ops('publish').length, 0);
    ws.welcome();
    const sent = ws.ops('publish');
    assert.deepEqual(sent.map((f) => f.data.n), [1, 2]);
    ws.frame({ op: 'ack', id: sent[0].id, event_id: '9-0' });
    ws.frame({ op: 'error', id: sent[1].id, code: 'FORBIDDEN', message: 'no', retryable: false });
    assert.deepEqual(await a, { ok: '9-0' });
    assert.deepEqual(await b, { err: 'FORBIDDEN' });
  });

  it('bounds the offline queue', async () => {
    make({ maxQueue: 2 });
    const held = [outcome(client.publish('t', 'x')), outcome(client.publish('t', 'x'))];
    assert.deepEqual(await outcome(client.publish('t', 'x')), { err: 'QUEUE_FULL' });
    client.close();
    assert.deepEqual(await Promise.all(held), [{ err: 'CLOSED' }, { err: 'CLOSED' }]);
  });

  it('refuses an event over the frame limit at once', async () => {
    make({ maxFrameBytes: 100 });
    assert.deepEqual(await outcome(client.publish('t', 'x', { s: 'é'.repeat(60) })), { err: 'TOO_LARGE' });
  });

  it('reports a publish in flight when the socket drops as UNCONFIRMED, and does not send it twice', async () => {
    make();
    client.connect();
    await flush();
    server.last.welcome();
    const p = outcome(client.publish('t', 'x'));
    server.last.drop(1006);
    assert.deepEqual(await p, { err: 'UNCONFIRMED' });
    mock.timers.tick(30_000);
    await flush();
    server.last.welcome();
    assert.equal(server.last.ops('publish').length, 0);
  });

  it('fails queued publishes on close', async () => {
    make();
    const p = outcome(client.publish('t', 'x'));
    client.close();
    assert.deepEqual(await p, { err: 'CLOSED' });
  });

  it('uses POST /v1/send when not on a WebSocket, one at a time in order', async () => {
    const bodies = [];
    const fetch = fakeFetch(async (url, init) => {
      if (url.includes('/v1/send')) {
        bodies.push(JSON.parse(init.body));
        return { body: { event_id: `${bodies.length}-0` } };
      }
      return { status: 500, body: { error: { code: 'SERVER_ERROR', message: 'x' } } };
    });
    client = new RelayClient({ url: 'http://relay.test', fetch, transports: ['poll'], token: 'tok' });
    client.connect();
    await flush(10);
    assert.equal(client.state, 'connected');
    const r = await Promise.all([client.publish('a', 'x', { n: 1 }), client.publish('a', 'x', { n: 2 })]);
    assert.deepEqual(r.map((x) => x.event_id), ['1-0', '2-0']);
    assert.deepEqual(bodies, [
      { topic: 'a', type: 'x', data: { n: 1 } },
      { topic: 'a', type: 'x', data: { n: 2 } },
    ]);
    const send = fetch.calls.find((c) => c.url.endsWith('/v1/send'));
    assert.equal(send.init.headers.get('authorization'), 'Bearer tok');
  });
});
