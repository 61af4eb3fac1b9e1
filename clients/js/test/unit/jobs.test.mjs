// jobs.watch: one live object from the job's topic; reloads from the transcript or the record on a reset.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { RelayClient } from '../../dist/index.js';
import { FakeServer, fakeFetch, flush } from '../helpers/fake.mjs';

let server;
let client;
beforeEach(() => (server = new FakeServer()));
afterEach(() => client?.close());

const record = (over = {}) => ({
  id: 'j1', kind: 'stream', state: 'running', owner: 'u', payload: {}, progress: null, attempts: 1, max_attempts: 3,
  result: null, error: null, created_at: '', started_at: null, finished_at: null, ...over,
});

function setup({ rec = () => record(), transcript = null } = {}) {
  const fetch = fakeFetch((url) => {
    if (url.endsWith('/v1/jobs/j1')) return { body: rec() };
    if (url.includes('/v1/jobs/j1/events')) return transcript ? { body: transcript() } : { status: 404 };
    if (url.endsWith('/v1/jobs/j1/cancel')) return { status: 202, body: rec() };
    return { status: 404 };
  });
  client = new RelayClient({ url: 'http://relay.test', WebSocket: server.WebSocket, fetch, transports: ['websocket'] });
  return fetch;
}
const ev = (id, type, data) => server.last.event('job:j1', id, type, data);

describe('jobs.watch', () => {
  it('follows state, progress, logs, text and result, from the topic\'s first event', async () => {
    let reads = 0;
    setup({ rec: () => (++reads === 1 ? record() : record({ state: 'completed', result: { chars: 6 }, output: 'abcdef' })) });
    const w = client.jobs.watch('j1');
    const views = [];
    w.onChange((v) => views.push(v));
    await flush();
    server.last.welcome();
    assert.deepEqual(server.last.ops('subscribe')[0].since, '0-0', 'the whole history of the job');
    server.last.ackSubscribes({ position: '9-0' });
    ev('1-0', 'job.queued', { job: {} });
    ev('2-0', 'job.started', { attempt: 1, worker: 'w' });
    ev('3-0', 'job.progress', { percent: 40, step: 'a' });
    ev('4-0', 'job.log', { level: 'info', message: 'hello' });
    ev('5-0', 'job.chunk', { seq: 0, text: 'abc' });
    ev('5-1', 'job.chunk', { seq: 0, text: 'abc' });
    ev('6-0', 'job.chunk', { seq: 1, text: 'def' });
    assert.equal(w.view.state, 'running');
    assert.deepEqual(w.view.progress, { percent: 40, step: 'a' });
    assert.deepEqual(w.view.logs.map((l) => [l.id, l.level, l.message]), [['4-0', 'info', 'hello']]);
    assert.equal(w.view.text, 'abcdef', 'a repeated seq is not joined twice');
    ev('7-0', 'job.completed', { result: { chars: 6 } });
    const final = await w.done;
    assert.equal(final.state, 'completed');
    assert.deepEqual(final.result, { chars: 6 });
    assert.equal(final.done, true);
    assert.ok(views.length >= 7 && views.every((v, i) => i === 0 || v !== views[i - 1]), 'a new object per change');
    assert.equal(server.last.ops('unsubscribe').length, 1, 'an ended job is no longer followed');
  });

  it('starts the text again with a new attempt', async () => {
    setup();
    const w = client.jobs.watch('j1');
    await flush();
    server.last.welcome();
    ev('1-0', 'job.started', { attempt: 1 });
    ev('2-0', 'job.chunk', { seq: 0, text: 'first' });
    ev('3-0', 'job.retrying', { attempt: 1, error: 'x', retry_in_ms: 10 });
    assert.equal(w.view.state, 'queued');
    ev('4-0', 'job.started', { attempt: 2 });
    ev('5-0', 'job.chunk', { seq: 0, text: 'second' });
    assert.equal(w.view.text, 'second');
    assert.equal(w.view.attempts, 2);
    w.close();
  });

  it('on recovered:false, rebuilds from the transcript and goes on with live events', async () => {
    const transcript = () => ({
      events: [
        { topic: 'job:j1', id: '1-0', type: 'job.started', data: { attempt: 1 }, ts: 1 },
        { topic: 'job:j1', id: '2-0', type: 'job.log', data: { level: 'info', message: 'kept' }, ts: 2 },
        { topic: 'job:j1', id: '3-0', type: 'job.chunk', data: { seq: 0, text: 'aa' }, ts: 3 },
        { topic: 'job:j1', id: '4-0', type: 'job.chunk', data: { seq: 1, text: 'bb' }, ts: 4 },
      ],
      next_cursor: null,
    });
    setup({ transcript });
    const w = client.jobs.watch('j1');
    await flush();
    server.last.welcome();
    server.last.ackSubscribes({ position: '5-0', recovered: false });
    ev('4-0', 'job.chunk', { seq: 1, text: 'bb' });
    ev('5-0', 'job.chunk', { seq: 2, text: 'cc' });
    await flush();
    assert.equal(w.view.text, 'aabbcc');
    assert.deepEqual(w.view.logs.map((l) => l.message), ['kept']);
    ev('6-0', 'job.chunk', { seq: 3, text: 'dd' });
    assert.equal(w.view.text, 'aabbccdd');
    w.close();
  });

  it('on recovered:false without a transcript, re-reads the record and takes its output', async () => {
    let reads = 0;
    const f = setup({ rec: () => (++reads === 1 ? record() : record({ output: 'from the record', progress: { percent: 70 } })) });
    const w = client.jobs.watch('j1');
    await flush();
    server.last.welcome();
    server.last.ackSubscribes({ recovered: false });
    await flush();
    assert.ok(f.calls.some((c) => c.url.includes('/events')), 'the transcript was tried first');
    assert.equal(w.view.text, 'from the record');
    assert.deepEqual(w.view.progress, { percent: 70 });
    w.close();
  });

  it('reads a job that has already ended whole, from its record', async () => {
    setup({ rec: () => record({ state: 'failed', error: 'boom', output: 'partial', attempts: 3 }) });
    const w = client.jobs.watch('j1');
    const v = await w.done;
    assert.deepEqual([v.state, v.error, v.text, v.attempts, v.done], ['failed', 'boom', 'partial', 3, true]);
  });

  it('shares one watch per job until every watcher closed', async () => {
    setup();
    const a = client.jobs.watch('j1');
    const b = client.jobs.watch('j1');
    assert.equal(a, b);
    await flush();
    server.last.welcome();
    a.close();
    assert.equal(server.last.ops('unsubscribe').length, 0);
    b.close();
    assert.equal(server.last.ops('unsubscribe').length, 1);
  });

  it('cancel sends the reason', async () => {
    const f = setup();
    await client.jobs.cancel('j1', 'user pressed stop');
    const call = f.calls.find((c) => c.url.endsWith('/cancel'));
    assert.equal(call.init.method, 'POST');
    assert.deepEqual(JSON.parse(call.init.body), { reason: 'user pressed stop' });
  });
});
