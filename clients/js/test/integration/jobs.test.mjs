// Jobs end to end: submit, get, list, cancel, upload, and jobs.watch on real
// gateways behind nginx, a real worker, Redis and PostgreSQL.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { RelayClient } from '../../dist/index.js';
import { API_KEY, Stack, assertTools, eventually, jwt, requires, startGateway, startNginx, startPostgres, startRedis, startWorker } from '../helpers/env.mjs';

const req = requires('redis', 'postgres', 'nginx', 'binaries');

const TEXT = 'Relay streams this answer chunk by chunk, and a watch joins them whole. '.repeat(6);

describe('jobs', { skip: req.skip }, () => {
  const stack = new Stack();
  let gws, nginx, client;
  const clients = [];
  const newClient = (opts) => {
    const c = new RelayClient({ url: nginx.url, WebSocket, reconnect: { initialMs: 100, maxMs: 1000 }, connectTimeoutMs: 3000, ...opts });
    clients.push(c);
    return c;
  };

  before(async () => {
    assertTools(req);
    const redis = stack.add(await startRedis());
    const pg = stack.add(await startPostgres());
    gws = [await startGateway({ redis, pg }), await startGateway({ redis, pg })];
    gws.forEach((g) => stack.add(g));
    stack.add(await startWorker({ redis, pg }));
    nginx = stack.add(await startNginx({ gateways: gws }));
    client = newClient({ token: jwt({ sub: 'ivy' }) });
    // The schema is migrated in the background: wait until jobs are served.
    await eventually(() => client.jobs.list({ limit: 1 }).then(() => true), 30_000, 'the job API');
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await stack.stop();
  });

  it('submit, get, list, and a watch that follows progress to the result', async () => {
    const accepted = await client.jobs.submit('sleep', { ms: 1500, steps: 5 }, { max_attempts: 2 });
    assert.equal(accepted.state, 'queued');
    assert.equal(accepted.topic, `job:${accepted.id}`);
    const w = client.jobs.watch(accepted.id);
    const percents = [];
    w.onChange((v) => v.progress && percents.at(-1) !== v.progress.percent && percents.push(v.progress.percent));
    const v = await w.done;
    assert.equal(v.state, 'completed');
    assert.ok(v.result.slept_ms >= 1500, JSON.stringify(v.result));
    assert.equal(v.kind, 'sleep');
    assert.equal(v.attempts, 1);
    assert.ok(percents.includes(100), `progress reached 100: ${percents}`);
    assert.ok(percents.length >= 3, `progress was seen live: ${percents}`);
    assert.deepEqual([...percents].sort((a, b) => a - b), percents, 'progress only goes up');
    const rec = await client.jobs.get(accepted.id);
    assert.equal(rec.state, 'completed');
    const list = await client.jobs.list({ state: 'completed', kind: 'sleep', limit: 10 });
    assert.ok(list.jobs.some((j) => j.id === accepted.id));
    assert.ok('next_cursor' in list);
  });

  it('a streamed answer: the watch\'s text grows chunk by chunk and ends whole, through a gateway kill', async () => {
    const { id } = await client.jobs.submit('stream', { text: TEXT, chunk_chars: 4, interval_ms: 15 });
    const w = client.jobs.watch(id);
    const lengths = [];
    w.onChange((v) => lengths.push(v.text.length));
    await eventually(() => w.view.text.length > 40, 20_000, 'the first chunks');
    // Kill the gateway holding the watch's socket, mid-stream.
    const g = await eventually(async () => {
      for (const x of gws) if ((await x.connections()) > 0) return x;
    }, 10_000, 'the gateway of the watch');
    await g.kill();
    const v = await w.done;
    await g.start();
    assert.equal(v.state, 'completed');
    assert.equal(v.text, TEXT);
    assert.deepEqual(v.result, { chars: TEXT.length });
    assert.ok(lengths.filter((n, i) => i && n > lengths[i - 1]).length > 10, 'the text was seen growing');
  });

  it('cancel(id, reason): a running job ends cancelled', async (t) => {
    const { id } = await client.jobs.submit('sleep', { ms: 30_000, steps: 30 });
    const w = client.jobs.watch(id);
    await eventually(() => w.view.state === 'running', 20_000, 'the job to run');
    await client.jobs.cancel(id, 'the user pressed stop');
    const v = await w.done;
    assert.equal(v.state, 'cancelled');
    const again = await client.jobs.cancel(id, 'twice').then(
      () => 'accepted',
      (e) => `${e.code} ${e.status}`,
    );
    assert.equal(again, 'CONFLICT 409', 'an ended job cannot be cancelled');
    if (v.error !== 'the user pressed stop') {
      t.skip(`server lacks v1.1 "job.cancelled carries the reason given to cancel" (got ${JSON.stringify(v.error)})`);
    }
  });

  it('a job that ended before the watch began is read whole', async () => {
    const { id } = await client.jobs.submit('stream', { text: 'short answer', chunk_chars: 3, interval_ms: 0 });
    await eventually(async () => (await client.jobs.get(id)).state === 'completed', 20_000, 'the job to end');
    const v = await client.jobs.watch(id).done;
    assert.equal(v.state, 'completed');
    assert.equal(v.text, 'short answer');
  });

  it('another user\'s job is not found', async () => {
    const { id } = await client.jobs.submit('sleep', { ms: 0, steps: 1 });
    const other = newClient({ token: jwt({ sub: 'mallory' }) });
    const e = await other.jobs.get(id).catch((err) => err);
    assert.equal(e.code, 'NOT_FOUND');
    assert.equal(e.status, 404);
    const watched = await other.jobs.watch(id).done.catch((err) => err);
    assert.equal(watched.code, 'NOT_FOUND', 'a watch of it ends at once');
  });

  it('upload(file) with progress, then a reconcile job on two uploads', async () => {
    const left = 'ID,AMOUNT\n1,10\n2,20\n3,30\n' + Array.from({ length: 20_000 }, (_, i) => `${i + 10},${i}`).join('\n') + '\n';
    const right = 'REF;MONTANT\n1;10.0\n2;25\n4;40\n';
    const progress = [];
    const up = await client.jobs.upload(new Blob([left], { type: 'text/csv' }), {
      filename: 'left.csv',
      onProgress: (sent, total) => progress.push([sent, total]),
    });
    assert.equal(up.bytes, Buffer.byteLength(left));
    assert.equal(up.sha256, createHash('sha256').update(left).digest('hex'));
    assert.ok(progress.length >= 1);
    assert.deepEqual(progress.at(-1), [up.bytes, up.bytes], 'progress ends at the whole file');
    const up2 = await client.jobs.upload(new TextEncoder().encode(right), { filename: 'right.csv' });
    const { id } = await client.jobs.submit('reconcile', {
      left: { upload_id: up.upload_id },
      right: { upload_id: up2.upload_id },
      left_key: 'ID',
      right_key: 'REF',
      compare: [['AMOUNT', 'MONTANT']],
    });
    const v = await client.jobs.watch(id).done;
    assert.equal(v.state, 'completed', JSON.stringify(v.error));
    assert.equal(v.result.matches, 1);
    assert.equal(v.result.mismatches, 1);
    assert.equal(v.result.right_only, 1);
    assert.equal(v.result.left_only, 20_001);
  });

  describe('v1.1 server features (skip, naming the feature, while the server lacks them)', () => {
    it('job events carry job_id, and state events kind', async (t) => {
      const { id } = await client.jobs.submit('sleep', { ms: 0, steps: 1 });
      const events = [];
      const sub = client.subscribe(`job:${id}`, { since: '0-0', onEvent: (e) => events.push(e) });
      await eventually(() => events.some((e) => e.type === 'job.completed'), 20_000, 'the job to end');
      sub.unsubscribe();
      if (!events.some((e) => 'job_id' in e.data)) return t.skip('server lacks v1.1 "job_id/kind in job event data"');
      assert.ok(events.every((e) => e.data.job_id === id));
      for (const e of events.filter((e) => ['job.queued', 'job.started', 'job.completed'].includes(e.type))) assert.equal(e.data.kind, 'sleep', e.type);
    });

    it('a backend submits for a user with the API key (owner)', async (t) => {
      const backend = newClient({ apiKey: API_KEY });
      const r = await backend.jobs.submit('sleep', { ms: 0, steps: 1 }, { owner: 'ivy' }).catch((e) => e);
      if (r instanceof Error) return t.skip(`server lacks v1.1 "owner on submit with an API key" (${r.code})`);
      const rec = await client.jobs.get(r.id);
      assert.equal(rec.owner, 'ivy', 'the job is the user\'s');
      const v = await client.jobs.watch(r.id).done;
      assert.equal(v.state, 'completed');
    });

    it('the record\'s output is the streamed text', async (t) => {
      const { id } = await client.jobs.submit('stream', { text: 'abcdefghij', chunk_chars: 3, interval_ms: 0 });
      await eventually(async () => (await client.jobs.get(id)).state === 'completed', 20_000, 'the job to end');
      const rec = await client.jobs.get(id);
      if (typeof rec.output !== 'string') return t.skip('server lacks v1.1 "output" on the job record');
      assert.equal(rec.output, 'abcdefghij');
    });

    it('the transcript (GET /v1/jobs/{id}/events) lists every event in order', async (t) => {
      const { id } = await client.jobs.submit('stream', { text: 'abcdefghij', chunk_chars: 2, interval_ms: 0 });
      await client.jobs.watch(id).done;
      const page = await client.jobs.events(id).catch((e) => e);
      if (page instanceof Error) return t.skip(`server lacks v1.1 "GET /v1/jobs/{id}/events" (${page.code})`);
      const chunks = page.events.filter((e) => e.type === 'job.chunk').map((e) => e.data.text);
      assert.equal(chunks.join(''), 'abcdefghij');
      assert.equal(page.events.at(-1).type, 'job.completed');
    });

    it('reconcile lists its artifacts on the record', async (t) => {
      const a = await client.jobs.upload('K,V\n1,1\n2,2\n', { filename: 'a.csv' });
      const b = await client.jobs.upload('K,V\n1,1\n3,3\n', { filename: 'b.csv' });
      const { id } = await client.jobs.submit('reconcile', { left: { upload_id: a.upload_id }, right: { upload_id: b.upload_id }, left_key: 'K', right_key: 'K', compare: [['V', 'V']] });
      const v = await client.jobs.watch(id).done;
      if (!Array.isArray(v.record?.artifacts)) return t.skip('server lacks v1.1 "artifacts" on the job record');
      assert.deepEqual(v.record.artifacts.map((x) => x.name).sort(), ['left_only.csv', 'matches.csv', 'mismatches.csv', 'right_only.csv']);
    });
  });
});
