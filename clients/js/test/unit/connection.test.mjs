// Connection: backoff with full jitter, close codes, heartbeat, state events.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { RelayClient, backoff } from '../../dist/index.js';
import { FakeServer, flush, token } from '../helpers/fake.mjs';

let server;
let client;
const make = (opts = {}) => {
  client = new RelayClient({ url: 'http://relay.test', WebSocket: server.WebSocket, transports: ['websocket'], ...opts });
  const states = [];
  client.on('state', (s) => states.push(s));
  const errors = [];
  client.on('error', (e) => errors.push(e));
  return { client, states, errors };
};

beforeEach(() => {
  server = new FakeServer();
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
});
afterEach(() => {
  client?.close();
  mock.timers.reset();
  mock.restoreAll();
});

describe('backoff', () => {
  it('is full jitter: uniform below a cap that doubles up to the maximum', () => {
    mock.method(Math, 'random', () => 0.999999);
    assert.equal(backoff(0), 499);
    assert.equal(backoff(1), 999);
    assert.equal(backoff(3), 3999);
    assert.equal(backoff(30), 29_999, 'bounded by maxMs');
    assert.equal(backoff(2, { initialMs: 100, maxMs: 250, factor: 3 }), 249);
    mock.method(Math, 'random', () => 0);
    assert.equal(backoff(10), 0, 'full jitter reaches zero');
  });
});

describe('reconnect', () => {
  it('reconnects after a drop with growing jittered delays, and resets after a stable connection', async () => {
    mock.method(Math, 'random', () => 0.5);
    const { states } = make();
    client.connect();
    await flush();
    assert.equal(server.sockets.length, 1);
    assert.equal(server.last.url, 'ws://relay.test/v1/ws');
    // Three failures before welcome: 250, 500, 1000 ms.
    for (const expected of [250, 500, 1000]) {
      server.last.drop(1006);
      const d = states.at(-1);
      assert.equal(d.state, 'disconnected');
      assert.equal(d.retryInMs, expected);
      mock.timers.tick(expected - 1);
      await flush();
      const before = server.sockets.length;
      mock.timers.tick(1);
      await flush();
      assert.equal(server.sockets.length, before + 1, `reconnects after ${expected} ms`);
    }
    server.last.welcome();
    assert.equal(client.state, 'connected');
    assert.equal(client.transport, 'websocket');
    mock.timers.tick(6000);
    server.last.drop(1006);
    assert.equal(states.at(-1).retryInMs, 250, 'a connection that stayed up resets the backoff');
  });

  it('emits connecting, connected and disconnected with the transport', async () => {
    const { states } = make();
    client.connect();
    await flush();
    server.last.welcome();
    server.last.drop(1006);
    assert.deepEqual(
      states.map((s) => [s.state, s.transport]),
      [
        ['connecting', 'websocket'],
        ['connected', 'websocket'],
        ['disconnected', null],
      ],
    );
  });
});

describe('close codes', () => {
  it('4000 (draining): reconnects at once', async () => {
    make();
    client.connect();
    await flush();
    server.last.welcome();
    server.last.drop(4000, 'server draining');
    mock.timers.tick(0);
    await flush();
    assert.equal(server.sockets.length, 2);
  });

  it('4008 (too slow): resumes at once with since and epoch', async () => {
    make();
    client.subscribe('chat:1', { onEvent() {} });
    await flush();
    server.last.welcome();
    server.last.ackSubscribes({ position: '5-0', epoch: 'k3' });
    server.last.event('chat:1', '6-0');
    server.last.drop(4008);
    mock.timers.tick(0);
    await flush();
    server.last.welcome();
    assert.deepEqual(server.last.ops('subscribe').map(({ topic, since, epoch }) => ({ topic, since, epoch })), [
      { topic: 'chat:1', since: '6-0', epoch: 'k3' },
    ]);
  });

  it('4001 (token expired): takes a fresh token from getToken and reconnects with it', async () => {
    let n = 0;
    const getToken = mock.fn(async () => token({ sub: 'a', exp: 4_000_000_000, n: ++n }));
    make({ getToken });
    client.connect();
    await flush();
    const first = server.last.url;
    server.last.welcome();
    server.last.drop(4001, 'token expired');
    mock.timers.tick(0);
    await flush();
    assert.equal(getToken.mock.callCount(), 2);
    assert.equal(server.sockets.length, 2);
    assert.notEqual(server.last.url, first);
    assert.ok(server.last.url.includes('?token='));
  });

  it('refreshes a token about to expire before connecting', async () => {
    const getToken = mock.fn(async () => token({ sub: 'a', exp: 1 }));
    make({ getToken });
    client.connect();
    await flush();
    server.last.drop(1006);
    mock.timers.tick(1000);
    await flush();
    assert.equal(getToken.mock.callCount(), 2, 'an expired token is not reused');
  });

  it('4001 with a fixed token: stops and reports TOKEN_EXPIRED until setToken', async () => {
    const { errors, states } = make({ token: 'old' });
    client.connect();
    await flush();
    server.last.welcome();
    server.last.drop(4001);
    mock.timers.tick(60_000);
    await flush();
    assert.equal(server.sockets.length, 1, 'no reconnect with a token known to be expired');
    assert.equal(errors.at(-1).code, 'TOKEN_EXPIRED');
    assert.equal(states.at(-1).state, 'disconnected');
    client.setToken('new');
    await flush();
    assert.equal(server.sockets.length, 2);
    assert.ok(server.last.url.endsWith('?token=new'));
  });

  for (const code of [1008, 1009]) {
    it(`${code}: reports the close and backs off instead of spinning`, async () => {
      mock.method(Math, 'random', () => 0.5);
      const { errors, states } = make();
      client.connect();
      await flush();
      server.last.welcome();
      server.last.drop(code, 'policy');
      assert.equal(errors.at(-1).code, `CLOSE_${code}`);
      assert.equal(errors.at(-1).status, code);
      assert.equal(states.at(-1).retryInMs, 3000, 'a second, plus the fourth step of the backoff');
      mock.timers.tick(2999);
      await flush();
      assert.equal(server.sockets.length, 1);
      mock.timers.tick(1);
      await flush();
      assert.equal(server.sockets.length, 2);
    });
  }
});

describe('heartbeat', () => {
  it('finds a dead socket within two heartbeats and reconnects', async () => {
    make();
    client.connect();
    await flush();
    const ws = server.last;
    ws.welcome(1000);
    mock.timers.tick(1500);
    assert.ok(ws.ops('ping').length >= 1, 'application pings are sent when the socket is quiet');
    assert.equal(client.state, 'connected', 'not given up before one and a half heartbeats of silence');
    mock.timers.tick(500);
    assert.equal(client.state, 'disconnected', 'given up two heartbeats after the last frame');
    assert.ok(ws.closedWith);
    mock.timers.tick(1000);
    await flush();
    assert.equal(server.sockets.length, 2);
  });

  it('keeps a socket that answers its pings', async () => {
    make();
    client.connect();
    await flush();
    const ws = server.last;
    ws.welcome(1000);
    for (let i = 0; i < 20; i++) {
      mock.timers.tick(500);
      if (ws.ops('ping').length > i / 2) ws.frame({ op: 'pong' });
    }
    assert.equal(client.state, 'connected');
    assert.equal(server.sockets.length, 1);
  });

  it('gives up on a socket that never says welcome', async () => {
    make({ connectTimeoutMs: 3000 });
    client.connect();
    await flush();
    mock.timers.tick(3000);
    assert.equal(client.state, 'disconnected');
  });
});
