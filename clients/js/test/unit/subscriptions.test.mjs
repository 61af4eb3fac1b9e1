// Subscriptions: de-dup by id, order, resume with since and epoch, resets, storage.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { RelayClient, cmpId } from '../../dist/index.js';
import { FakeServer, flush } from '../helpers/fake.mjs';

let server;
let client;
const make = (opts = {}) =>
  (client = new RelayClient({ url: 'http://relay.test', WebSocket: server.WebSocket, transports: ['websocket'], ...opts }));
const reconnect = async () => {
  server.last.drop(1006);
  mock.timers.tick(30_000);
  await flush();
  server.last.welcome();
};

beforeEach(() => {
  server = new FakeServer();
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
});
afterEach(() => {
  client?.close();
  mock.timers.reset();
});

describe('ids', () => {
  it('compare numerically, beyond 2^53', () => {
    assert.ok(cmpId('9-0', '10-0') < 0);
    assert.ok(cmpId('10-2', '10-10') < 0);
    assert.ok(cmpId('18446744073709551615-1', '18446744073709551614-9') > 0);
    assert.equal(cmpId('5-5', '5-5'), 0);
  });
});

describe('subscribe', () => {
  it('delivers each event once, in order, dropping duplicates and older ids', async () => {
    const got = [];
    make().subscribe('chat:1', { onEvent: (e) => got.push(e.id) });
    await flush();
    const ws = server.last;
    ws.welcome();
    ws.ackSubscribes({ position: '1-0' });
    for (const id of ['2-0', '3-0', '3-0', '2-5', '10-0', '9-9', '10-1']) ws.event('chat:1', id);
    assert.deepEqual(got, ['2-0', '3-0', '10-0', '10-1']);
  });

  it('without since, starts at the position the server gave and resumes from there', async () => {
    make().subscribe('chat:1', { onEvent() {} });
    await flush();
    server.last.welcome();
    assert.deepEqual(server.last.ops('subscribe')[0], { op: 'subscribe', id: 1, topic: 'chat:1' });
    server.last.ackSubscribes({ position: '7-0', epoch: 'ep' });
    await reconnect();
    const f = server.last.ops('subscribe')[0];
    assert.equal(f.since, '7-0', 'events published while disconnected are replayed');
    assert.equal(f.epoch, 'ep');
  });

  it('resubscribes every topic with its own last id and epoch after each reconnect', async () => {
    const got = { a: [], b: [] };
    make();
    client.subscribe('a', { onEvent: (e) => got.a.push(e.id) });
    client.subscribe('b', { onEvent: (e) => got.b.push(e.id), since: '100-0', epoch: 'eb' });
    await flush();
    server.last.welcome();
    assert.deepEqual(
      server.last.ops('subscribe').map((f) => [f.topic, f.since, f.epoch]),
      [
        ['a', undefined, undefined],
        ['b', '100-0', 'eb'],
      ],
    );
    server.last.ackSubscribes({ position: '1-0', epoch: 'ea' });
    server.last.event('a', '2-0');
    server.last.event('b', '101-0');
    await reconnect();
    assert.deepEqual(
      server.last.ops('subscribe').map((f) => [f.topic, f.since, f.epoch]),
      [
        ['a', '2-0', 'ea'],
        ['b', '101-0', 'ea'],
      ],
    );
    // The replay repeats what the client has; only new events come through.
    server.last.event('a', '2-0');
    server.last.event('a', '3-0');
    assert.deepEqual(got.a, ['2-0', '3-0']);
  });

  it('passes a millisecond timestamp as since until it has an id', async () => {
    make().subscribe('t', { onEvent() {}, since: '1732240000000' });
    await flush();
    server.last.welcome();
    assert.equal(server.last.ops('subscribe')[0].since, '1732240000000');
  });

  it('calls onReset on recovered:false, and takes a new epoch whose ids start lower', async () => {
    const got = [];
    const resets = [];
    make().subscribe('t', { onEvent: (e) => got.push(e.id), onReset: (r) => resets.push(r), since: '500-0', epoch: 'old' });
    await flush();
    server.last.welcome();
    server.last.ackSubscribes({ position: '20-0', epoch: 'new', recovered: false });
    assert.equal(resets.length, 1);
    assert.equal(resets[0].topic, 't');
    server.last.event('t', '10-0');
    server.last.event('t', '20-0');
    assert.deepEqual(got, ['10-0', '20-0'], 'the new life is delivered although its ids are below the old position');
    await reconnect();
    assert.deepEqual([server.last.ops('subscribe')[0].since, server.last.ops('subscribe')[0].epoch], ['20-0', 'new']);
  });

  it('takes the notice of a topic whose history was lost while subscribed', async () => {
    const resets = [];
    const got = [];
    make().subscribe('t', { onEvent: (e) => got.push(e.id), onReset: (r) => resets.push(r) });
    await flush();
    server.last.welcome();
    server.last.ackSubscribes({ position: '900-0', epoch: 'a' });
    server.last.event('t', '901-0');
    server.last.frame({ op: 'subscribed', id: null, topic: 't', position: '0-0', epoch: 'b', recovered: false, replayed: 0 });
    server.last.event('t', '5-0');
    assert.equal(resets.length, 1);
    assert.deepEqual(got, ['901-0', '5-0']);
  });

  it('ends a refused subscription with onError, and retries a retryable refusal', async () => {
    const errors = [];
    make();
    client.subscribe('secret', { onEvent() {}, onError: (e) => errors.push(e.code) });
    client.subscribe('busy', { onEvent() {} });
    await flush();
    const ws = server.last;
    ws.welcome();
    const [s1, s2] = ws.ops('subscribe');
    ws.frame({ op: 'error', id: s1.id, code: 'FORBIDDEN', message: 'no', retryable: false });
    ws.frame({ op: 'error', id: s2.id, code: 'UNAVAILABLE', message: 'redis', retryable: true });
    assert.deepEqual(errors, ['FORBIDDEN']);
    mock.timers.tick(30_000);
    assert.deepEqual(ws.ops('subscribe').slice(2).map((f) => f.topic), ['busy']);
    await reconnect();
    assert.deepEqual(server.last.ops('subscribe').map((f) => f.topic), ['busy'], 'the refused topic is not resubscribed');
  });

  it('unsubscribes when the last listener leaves', async () => {
    make();
    const s1 = client.subscribe('t', { onEvent() {} });
    const got = [];
    const s2 = client.subscribe('t', { onEvent: (e) => got.push(e.id) });
    assert.throws(() => client.subscribe('t', { onEvent() {}, since: '1-0' }), /already subscribed/);
    await flush();
    server.last.welcome();
    assert.equal(server.last.ops('subscribe').length, 1, 'one server subscription per topic');
    server.last.ackSubscribes();
    server.last.event('t', '1-0');
    s1.unsubscribe();
    assert.equal(server.last.ops('unsubscribe').length, 0);
    s2.unsubscribe();
    assert.equal(server.last.ops('unsubscribe').length, 1);
    server.last.event('t', '2-0');
    assert.deepEqual(got, ['1-0']);
  });

  it('keeps positions in storage, so a new client (a reloaded page) resumes', async () => {
    const data = new Map();
    const storage = { getItem: (k) => data.get(k) ?? null, setItem: (k, v) => data.set(k, v), removeItem: (k) => data.delete(k) };
    make({ storage }).subscribe('t', { onEvent() {} });
    await flush();
    server.last.welcome();
    server.last.ackSubscribes({ position: '3-0', epoch: 'e9' });
    server.last.event('t', '4-0');
    client.close();
    assert.deepEqual(JSON.parse(data.get('relay:t')), { id: '4-0', epoch: 'e9' });
    make({ storage }).subscribe('t', { onEvent() {} });
    await flush();
    server.last.welcome();
    const f = server.last.ops('subscribe')[0];
    assert.deepEqual([f.since, f.epoch], ['4-0', 'e9']);
  });
});
