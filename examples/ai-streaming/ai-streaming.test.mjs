// The ai-streaming recipe end to end: the chat page in headless Chromium
// submits questions as jobs of the Node worker's streaming kind (a worker
// over HTTP, examples/workers/node, started by the recipe's run command)
// and shows each answer chunk by chunk; Stop cancels it; a reload in the
// middle of an answer shows it whole and goes on.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { workerCommand } from '../lib/workers.mjs';
import { API_KEY, Stack, assertTools, browser, eventually, missingRoute, need, record, seen, startGateway, startPostgres, startRecipe, startRedis } from '../test/helpers.mjs';

const req = need('redis', 'postgres', 'binaries', 'chromium');
const noWorker = workerCommand('node') ? null : 'examples/workers/node (the Node worker over HTTP) is not there yet';
const LAST = '.msg.assistant:last-child';

describe('ai-streaming recipe', { skip: req.skip }, () => {
  const stack = new Stack();
  let gw, site, chrome, missing;

  before(async () => {
    assertTools(req);
    const redis = stack.add(await startRedis());
    const pg = stack.add(await startPostgres());
    gw = stack.add(await startGateway({ redis, pg, env: { RELAY_AUTH: 'off' } })); // as scripts/relay-up
    missing = noWorker ?? (await missingRoute(gw.url, 'POST', '/v1/worker/lease', { kinds: ['probe.none'], max: 1, wait_ms: 0, worker: 'probe' }, 'workers over HTTP'));
    if (missing) return;
    site = stack.add(await startRecipe('ai-streaming', { RELAY_URL: gw.url }));
    chrome = stack.add(await browser());
    const { kind } = await (await fetch(`${site.url}/config.json`)).json();
    const status = await (await fetch(`${gw.url}/v1/status`, { headers: { 'x-api-key': API_KEY } })).json();
    assert.ok(status.workers.some((w) => w.kinds?.includes(kind)), `the Node worker asked for the kind the page submits (${kind}): ${JSON.stringify(status.workers)}\n${site.output()}`);
  });
  after(() => stack.stop());

  const api = async (path) => (await fetch(gw.url + path, { headers: { 'x-api-key': API_KEY } })).json();
  /** What the job streamed, as Relay keeps it: the record's `output`, else its transcript's chunks. */
  async function streamed(id) {
    const rec = await api(`/v1/jobs/${id}`);
    if (typeof rec.output === 'string') return rec.output;
    const page = await fetch(`${gw.url}/v1/jobs/${id}/events?limit=1000`, { headers: { 'x-api-key': API_KEY } });
    if (page.ok) return (await page.json()).events.filter((e) => e.type === 'job.chunk').map((e) => e.data.text).join('');
    return null;
  }
  async function ask(page, question) {
    const n = await page.$$eval('.msg.assistant', (m) => m.length);
    await page.fill('#prompt', question);
    await page.click('#send');
    await eventually(async () => (await page.$$eval('.msg.assistant', (m) => m.length)) > n && (await page.getAttribute(LAST, 'data-job')), 20_000, 'the question to become a job');
    return page.getAttribute(LAST, 'data-job');
  }
  const state = (page) => page.getAttribute(LAST, 'data-state');
  const text = (page) => page.textContent(`${LAST} .text`);

  it('an answer streams in chunk by chunk and ends whole', async (t) => {
    if (missing) return t.skip(`not in this build: ${missing}`);
    const page = await chrome.open(site.url);
    const id = await ask(page, 'What is Relay?');
    await record(page, `${LAST} .text`);
    await eventually(async () => (await state(page)) === 'completed', 60_000, 'the answer to complete');
    const lengths = (await seen(page, `${LAST} .text`)).map((s) => s.length);
    assert.ok(new Set(lengths).size >= 3, `the answer was seen growing, chunk by chunk: ${lengths}`);
    assert.deepEqual([...lengths].sort((a, b) => a - b), lengths, 'it only grew');
    const whole = await streamed(id);
    if (whole !== null) assert.equal(await text(page), whole, 'the page shows exactly what the job streamed');
    else assert.ok((await text(page)).length > 0);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it('Stop cancels the answer where it is', async (t) => {
    if (missing) return t.skip(`not in this build: ${missing}`);
    const page = await chrome.open(site.url);
    const id = await ask(page, 'Tell me a long story, please.');
    await eventually(async () => (await text(page)).length > 0, 30_000, 'the first chunks');
    assert.equal(await state(page), 'running', 'the answer was still streaming when Stop was pressed (the fake model must stream for a few seconds)');
    await page.click('#stop');
    await eventually(async () => (await state(page)) === 'cancelled', 30_000, 'the answer to stop');
    assert.equal(await page.textContent(`${LAST} .badge`), '[stopped]');
    const rec = await api(`/v1/jobs/${id}`);
    assert.equal(rec.state, 'cancelled');
    const whole = await streamed(id);
    if (whole !== null) assert.equal(await text(page), whole, 'the page keeps what was streamed before Stop');
    assert.ok(await page.isHidden('#stop'));
    await page.close();
  });

  it('a reload in the middle of an answer shows it whole and goes on', async (t) => {
    if (missing) return t.skip(`not in this build: ${missing}`);
    const page = await chrome.open(site.url);
    const id = await ask(page, 'Explain resumable streams, at length.');
    await eventually(async () => (await text(page)).length > 0, 30_000, 'the first chunks');
    const before = await text(page);
    assert.equal(await state(page), 'running', 'the answer was still streaming at the reload (the fake model must stream for a few seconds)');
    await page.reload();
    await record(page, `${LAST} .text`);
    await eventually(async () => (await state(page)) === 'completed', 60_000, 'the answer to complete after the reload');
    const after = await text(page);
    assert.ok(after.startsWith(before), 'the answer goes on from its beginning, not from where the reload happened');
    assert.ok((await seen(page, `${LAST} .text`)).every((s) => s === '' || before.startsWith(s) || s.startsWith(before)), 'it never showed only a part from the middle');
    const whole = await streamed(id);
    if (whole !== null) assert.equal(after, whole, 'the reloaded page shows exactly what the job streamed');
    assert.equal(await page.$$eval('.msg.user', (m) => m.length), 1, 'the conversation came back with the reload');
    assert.deepEqual(page.errors, []);
    await page.close();
  });
});
