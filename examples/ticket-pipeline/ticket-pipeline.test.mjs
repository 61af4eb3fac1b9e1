// The ticket-pipeline recipe end to end: tickets submitted from the admin
// board run through their stages on the Python worker over HTTP
// (examples/workers/python, started by the recipe's run command); the
// ticket page in headless Chromium shows each stage, the logs as they
// arrive and the result; the board follows every ticket live from the
// `jobs` topic.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { workerCommand } from '../lib/workers.mjs';
import { API_KEY, Stack, assertTools, browser, eventually, missingRoute, need, record, seen, startGateway, startPostgres, startRecipe, startRedis } from '../test/helpers.mjs';

const req = need('redis', 'postgres', 'binaries', 'chromium');
const noWorker = workerCommand('python') ? null : 'examples/workers/python (the Python worker over HTTP) is not there yet';
const STAGES = ['prepare', 'analyse', 'implement', 'test', 'report'];

describe('ticket-pipeline recipe', { skip: req.skip }, () => {
  const stack = new Stack();
  let gw, site, chrome, missing;

  before(async () => {
    assertTools(req);
    const redis = stack.add(await startRedis());
    const pg = stack.add(await startPostgres());
    gw = stack.add(await startGateway({ redis, pg, env: { RELAY_AUTH: 'off' } })); // as scripts/relay-up: everyone is an admin
    missing = noWorker ?? (await missingRoute(gw.url, 'POST', '/v1/worker/lease', { kinds: ['probe.none'], max: 1, wait_ms: 0, worker: 'probe' }, 'workers over HTTP'));
    if (missing) return;
    site = stack.add(await startRecipe('ticket-pipeline', { RELAY_URL: gw.url }));
    chrome = stack.add(await browser());
  });
  after(() => stack.stop());

  const api = async (path) => (await fetch(gw.url + path, { headers: { 'x-api-key': API_KEY } })).json();
  const row = (board, title) => board.locator('#tickets tr', { hasText: title });
  /** Whether a job.started event on `jobs` says which job it is about (starting a ticket first when none has started). */
  async function eventsNameTheirJob() {
    const { kind } = await (await fetch(`${site.url}/config.json`)).json();
    for (;;) {
      const { events } = await (await fetch(`${gw.url}/v1/poll?topics=jobs&since=0&wait=0`)).json();
      const started = events.find((e) => e.type === 'job.started');
      if (started) return typeof started.data?.job_id === 'string';
      const res = await fetch(`${gw.url}/v1/jobs`, { method: 'POST', headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' }, body: JSON.stringify({ kind, payload: { ticket_id: 'T-probe', title: 'probe', description: 'probe' } }) });
      const { id } = await res.json();
      await eventually(async () => (await api(`/v1/jobs/${id}`)).state !== 'queued', 60_000, 'a ticket to start');
    }
  }
  async function openBoard() {
    const board = await chrome.open(site.url);
    await eventually(async () => (await board.textContent('#conn')).startsWith('connected'), 30_000, 'the board to connect');
    return board;
  }
  async function newTicket(board, title) {
    await board.fill('#title', title);
    await board.fill('#description', `Please ${title.toLowerCase()}.`);
    await board.click('#new button');
    await eventually(async () => (await row(board, title).count()) === 1, 20_000, `${title} on the board`);
    return row(board, title).getAttribute('data-id');
  }

  it('a ticket page shows each stage in order, the logs as they arrive, progress to 100 % and the result', async (t) => {
    if (missing) return t.skip(`not in this build: ${missing}`);
    const board = await openBoard();
    const id = await newTicket(board, 'Fix the login form');
    const href = await row(board, 'Fix the login form').locator('a').getAttribute('href');
    const page = await chrome.open(site.url + href);
    await record(page, '#step');
    await record(page, '#percent');
    await record(page, '#logs');
    await eventually(async () => (await page.textContent('#state')) === 'completed', 120_000, 'the ticket to complete');

    const steps = (await seen(page, '#step')).filter((s, i, all) => STAGES.includes(s) && all.indexOf(s) === i);
    assert.deepEqual(steps, STAGES, 'every stage was shown, in order');
    const percents = (await seen(page, '#percent')).map((s) => parseInt(s, 10));
    assert.equal(percents.at(-1), 100);
    assert.ok(percents.some((p) => p > 0 && p < 100), `progress was seen on the way: ${percents}`);
    const logCounts = (await seen(page, '#logs')).map((s) => s.length);
    assert.ok(new Set(logCounts).size >= 3, 'the logs grew as they arrived');
    assert.ok((await page.$$('#logs li')).length >= STAGES.length, 'a log line per stage at least');
    assert.equal(await page.$$eval('#stages li.done', (lis) => lis.length), STAGES.length, 'all stages are marked done');
    assert.ok(!(await page.isHidden('#result-box')));
    assert.equal(await page.textContent('#title'), 'Fix the login form');
    const rec = await api(`/v1/jobs/${id}`);
    assert.equal(rec.state, 'completed');
    assert.deepEqual(JSON.parse(await page.textContent('#result')), rec.result, 'the page shows the recorded result');
    // A reload tells the same story again.
    await page.reload();
    await eventually(async () => (await page.$$eval('#stages li.done', (lis) => lis.length)) === STAGES.length, 20_000, 'the reloaded ticket page');
    assert.deepEqual([page.errors, board.errors], [[], []]);
    await page.close();
    await board.close();
  });

  it('the board lists tickets live from the jobs topic, and cancels one', async (t) => {
    if (missing) return t.skip(`not in this build: ${missing}`);
    // Before v1.1 only job.queued names its job in `data`; the board needs job_id in every event.
    if (!(await eventsNameTheirJob())) return t.skip('not in this build: job events on `jobs` carry no data.job_id (contract v1.1)');

    const board = await openBoard();
    await record(board, '#tickets');
    const titles = ['Add a dark mode', 'Speed up the search'];
    for (const title of titles) await newTicket(board, title);
    for (const title of titles) {
      await eventually(async () => (await row(board, title).getAttribute('data-state')) === 'completed', 120_000, `${title} completed on the board`);
    }
    assert.ok((await seen(board, '#tickets')).some((s) => s.includes('running')), 'the board showed tickets running on the way');

    await newTicket(board, 'Rewrite everything');
    await eventually(async () => (await row(board, 'Rewrite everything').getAttribute('data-state')) === 'running', 60_000, 'the ticket to start');
    await row(board, 'Rewrite everything').locator('button.cancel').click();
    await eventually(async () => (await row(board, 'Rewrite everything').getAttribute('data-state')) === 'cancelled', 30_000, 'the ticket cancelled from the board (the pipeline must run for a few seconds)');
    assert.equal(await board.textContent('#error'), '');

    // A board opened later lists the same tickets in their final states.
    const later = await openBoard();
    for (const title of titles) await eventually(async () => (await row(later, title).getAttribute('data-state')) === 'completed', 20_000, `${title} on a new board`);
    assert.equal(await row(later, 'Rewrite everything').getAttribute('data-state'), 'cancelled');
    assert.deepEqual([board.errors, later.errors], [[], []]);
  });
});
