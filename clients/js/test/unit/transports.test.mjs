// Fallback WebSocket -> SSE -> long-poll, positions carried across them, and the way back.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { RelayClient, decodeCursor, encodeCursor } from '../../dist/index.js';
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

const hang = (init) =>
  new Promise((_, reject) => init.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))));
const cursorOf = (url) => decodeCursor(new URL(url).searchParams.get('cursor') ?? '') ?? new Map();

describe('cursors', () => {
  it('encode as the gateway does: base64url of 1;topic=epoch=id', () => {
    const c = encodeCursor([
      ['job:1', { epoch: 'abc', id: '5-1' }],
      ['user:a@b.c', { epoch: '', id: '0-0' }],
    ]);
    assert.equal(c, Buffer.from('1;job:1=abc=5-1;user:a@b.c==0-0').toString('base64url'));
    assert.deepEqual([...decodeCursor(c)], [
      ['job:1', { epoch: 'abc', id: '5-1' }],
      ['user:a@b.c', { epoch: '', id: '0-0' }],
    ]);
    assert.equal(decodeCursor(Buffer.from('2;a=b=1-0').toString('base64url')), null, 'another version is not guessed at');
    assert.equal(decodeCursor('!!!'), null);
  });
});

describe('fallback', () => {
  it('falls back to long-polling after WebSocket fails, resuming from the WebSocket position, and goes back to WebSocket', async () => {
    const polls = [];
    const fetch = fakeFetch((url, init) => {
      polls.push(url);
      if (polls.length === 1)
        return {
          body: {
            events: [{ topic: 'a', id: '7-0', type: 't', data: {}, ts: 7 }],
            cursor: encodeCursor([['a', { epoch: 'ea', id: '7-0' }]]),
            recovered: true,
          },
        };
      return hang(init);
    });
    client = new RelayClient({ url: 'http://relay.test', WebSocket: server.WebSocket, fetch, transports: ['websocket', 'poll'], upgradeRetryMs: 10_000 });
    const got = [];
    client.subscribe('a', { onEvent: (e) => got.push(e.id) });
    await flush();
    server.last.welcome();
    server.last.ackSubscribes({ position: '5-0', epoch: 'ea' });
    server.last.event('a', '6-0');
    server.last.drop(1006);
    for (let i = 0; i < 2; i++) {
      mock.timers.tick(30_000);
      await flush();
      server.last.drop(1006); // refused before welcome
    }
    mock.timers.tick(30_000);
    await flush(10);
    assert.equal(client.transport, 'poll');
    assert.equal(client.state, 'connected');
    assert.match(polls[0], /^http:\/\/relay\.test\/v1\/poll\?topics=a&cursor=.*&wait=0$/);
    assert.deepEqual(cursorOf(polls[0]).get('a'), { epoch: 'ea', id: '6-0' });
    assert.deepEqual(cursorOf(polls[1]).get('a'), { epoch: 'ea', id: '7-0' });
    assert.match(polls[1], /wait=25$/);
    assert.deepEqual(got, ['6-0', '7-0']);

    // The WebSocket is tried again later; when it works, it takes over from the poll's position.
    const sockets = server.sockets.length;
    mock.timers.tick(10_000);
    await flush();
    assert.equal(server.sockets.length, sockets + 1);
    server.last.welcome();
    assert.equal(client.transport, 'websocket');
    const f = server.last.ops('subscribe')[0];
    assert.deepEqual([f.since, f.epoch], ['7-0', 'ea']);
    server.last.ackSubscribes({ position: '7-0', epoch: 'ea' });
    server.last.event('a', '7-0');
    server.last.event('a', '8-0');
    assert.deepEqual(got, ['6-0', '7-0', '8-0']);
  });

  it('reads SSE: fixes a start for new topics, takes positions from event ids, and signals resets', async () => {
    const requests = [];
    let push;
    const fetch = fakeFetch((url, init) => {
      requests.push(url);
      if (url.includes('/v1/poll'))
        return { body: { events: [], cursor: encodeCursor([['a', { epoch: 'e1', id: '3-0' }]]), recovered: true } };
      if (requests.filter((u) => u.includes('/v1/sse')).length > 1) return hang(init);
      const body = new ReadableStream({ start: (c) => (push = (s) => c.enqueue(new TextEncoder().encode(s))) });
      return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
    });
    client = new RelayClient({ url: 'http://relay.test', fetch, transports: ['sse'] });
    const got = [];
    const resets = [];
    client.subscribe('a', { onEvent: (e) => got.push(e.id), onReset: () => resets.push(1) });
    await flush(10);
    assert.match(requests[0], /\/v1\/poll\?topics=a&wait=0$/, 'a new topic gets its start from a poll');
    assert.deepEqual(cursorOf(requests[1]).get('a'), { epoch: 'e1', id: '3-0' }, 'the stream starts there');
    assert.equal(client.transport, 'sse');
    const id4 = encodeCursor([['a', { epoch: 'e1', id: '4-0' }]]);
    push(`:connected\n\nid: ${id4}\ndata: {"topic":"a","id":"4-0","type":"t","data":{},"ts":4}\n\n`);
    push('event: reset\ndata: {"recovered":false}\n\n');
    push('id: x\r\ndata: {"topic":"a","id":"4-0","type":"t","data":{},"ts":4}\r\n\r\n');
    await flush();
    assert.deepEqual(got, ['4-0', '4-0'], 'after a reset the next event is taken whatever its id');
    assert.equal(resets.length, 1);
    assert.equal(client.subscribe('b', { onEvent() {} }).topic, 'b');
    await flush(10);
    const last = requests.at(-1);
    assert.match(last, /\/v1\/sse\?topics=a,b&cursor=/, 'a new topic restarts the stream with every position');
  });
});
