// Jobs in the console, on real processes: a job submitted from the form
// runs to 100 % with its result on its page; a running job is cancelled
// from its page; the list follows state events live; streamed output shows.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { API_KEY, api, eventually, req, shot, signIn, startBrowser, startRelay, tokens, waitJob } from './helpers.mjs';

describe('console: jobs', { skip: req.skip, timeout: 300_000 }, () => {
  let relay, browser, page;
  before(async () => {
    relay = await startRelay();
    browser = await startBrowser();
    page = await browser.page();
    await signIn(page, relay, { token: tokens.admin() });
  });
  after(async () => {
    await browser?.stop();
    await relay?.stop();
  });

  it('a sleep job submitted from the form shows its progress rising to 100 % and its result', async () => {
    await page.click('nav >> text=Submit');
    await page.click('button[role=tab]:text-is("sleep")');
    const payload = await page.inputValue('textarea.code');
    assert.deepEqual(Object.keys(JSON.parse(payload)).sort(), ['fail_attempts', 'ms', 'steps'], 'the payload editor starts from the kind\'s payload');
    await page.fill('textarea.code', JSON.stringify({ ms: 3000, steps: 6 }));
    await page.click('button[type=submit]');
    await page.waitForURL(/#\/jobs\/[^/?]+$/);
    const id = decodeURIComponent(page.url().split('/').pop());
    // Every progress value the page shows, in order.
    await page.evaluate(() => {
      window.seen = [];
      const note = () => {
        const p = document.querySelector('.progress-block progress');
        if (p && window.seen.at(-1) !== p.value) window.seen.push(p.value);
      };
      new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
      note();
    });
    await eventually(async () => (await page.evaluate(() => window.seen.some((v) => v > 0 && v < 100))), 20_000, 'progress between 0 and 100');
    await shot(page, 'job-running');
    await page.waitForSelector('.job[data-state=completed]', { timeout: 30_000 });
    const seen = await page.evaluate(() => window.seen);
    assert.equal(seen.at(-1), 100, 'the bar ends at 100');
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `progress never goes back: ${seen}`);
    assert.match(await page.textContent('.progress-facts'), /6 of 6 processed/, 'the last progress event (step 6 of 6) is shown');
    assert.match(await page.textContent('.progress-facts'), /step sleep/);
    const result = await page.textContent('.card:has(h2:text-is("Result")) .json');
    const record = await waitJob(relay, id, ['completed']);
    assert.ok(record.result.slept_ms >= 3000);
    assert.match(result, new RegExp(`slept_ms: ${record.result.slept_ms}`), 'the result is shown as JSON');
    assert.match(await page.textContent('.facts .fact-attempts dd'), /1 of 3/);
    assert.match(await page.textContent('.facts .fact-worker dd'), /^worker-\d+$/, 'the worker that ran it');
    assert.equal(await page.locator('.card:has(h2:text-is("Attempts"))').count(), 0, 'one attempt that worked: no history to show');
    assert.equal(await page.locator('button[name=cancel]').count(), 0, 'no cancel button once ended');
    await shot(page, 'job-completed');
    assert.deepEqual(page.errors, []);
  });

  it('the result tree folds and unfolds', async () => {
    await page.click('nav >> text=Submit');
    await page.click('button[role=tab]:text-is("sleep")');
    await page.fill('textarea.code', JSON.stringify({ ms: 0, steps: 1 }));
    await page.click('button[type=submit]');
    await page.waitForSelector('.job[data-state=completed] .card:has(h2:text-is("Result")) details.j-node[open]', { timeout: 30_000 });
    const node = page.locator('.card:has(h2:text-is("Result")) details.j-node').first();
    await node.locator('> summary').click();
    assert.equal(await node.getAttribute('open'), null, 'folded');
    assert.match(await node.locator('> summary').textContent(), /1 key/);
    await node.locator('> summary').click();
    assert.notEqual(await node.getAttribute('open'), null, 'unfolded');
  });

  it('a running job is cancelled from its page, with the recorded reason shown', async () => {
    await page.click('nav >> text=Submit');
    await page.click('button[role=tab]:text-is("sleep")');
    await page.fill('textarea.code', JSON.stringify({ ms: 120000, steps: 120 }));
    await page.click('button[type=submit]');
    await page.waitForSelector('.job[data-state=running]', { timeout: 30_000 });
    const id = decodeURIComponent(page.url().split('/').pop());
    await page.fill('input[name=reason]', 'stopped from the console test');
    await page.click('button[name=cancel]');
    await page.waitForSelector('.job[data-state=cancelled]', { timeout: 30_000 });
    const record = await waitJob(relay, id, ['cancelled']);
    // The reason the server recorded (v1.1 servers keep the one given).
    assert.ok(record.error, 'the record has a reason');
    assert.equal(await page.textContent('.job [role=alert]'), `Cancelled: ${record.error}`);
    assert.equal(await page.locator('button[name=cancel]').count(), 0);
    await shot(page, 'job-cancelled');
    assert.deepEqual(page.errors, []);
  });

  it('the list follows jobs live: a new job appears, its bar moves and its state changes without a reload', async () => {
    await page.click('nav >> text=Jobs');
    await page.waitForSelector('table.jobs');
    await page.evaluate(() => (window.notReloaded = true));
    const r = await api(relay, 'POST', '/v1/jobs', { token: tokens.admin(), body: { kind: 'sleep', payload: { ms: 6000, steps: 12 } } });
    assert.equal(r.status, 202);
    const row = `table.jobs tr[data-job="${r.json.id}"]`;
    await page.waitForSelector(row, { timeout: 20_000 });
    await page.waitForSelector(`${row}[data-state=running]`, { timeout: 20_000 });
    // The row's bar follows the job's progress events.
    const bar = () => page.locator(`${row} progress`).getAttribute('value').then(Number);
    await eventually(async () => (await bar()) > 0 && (await bar()) < 100, 20_000, 'the row\'s progress to move');
    await page.waitForSelector(`${row}[data-state=completed]`, { timeout: 30_000 });
    assert.equal(await bar(), 100);
    assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was not reloaded');
    await shot(page, 'jobs');
  });

  it('the state filter keeps only matching jobs, live', async () => {
    await page.selectOption('select[name=state]', 'running');
    await page.waitForURL(/state=running/);
    await eventually(async () => (await page.locator('table.jobs tbody tr').count()) === 0 || (await page.locator('.empty').count()) === 1, 10_000, 'no running jobs listed');
    const r = await api(relay, 'POST', '/v1/jobs', { token: tokens.admin(), body: { kind: 'sleep', payload: { ms: 4000, steps: 4 } } });
    const row = `table.jobs tr[data-job="${r.json.id}"]`;
    await page.waitForSelector(row, { timeout: 20_000 });
    await page.waitForSelector(row, { state: 'detached', timeout: 30_000 });
    const states = await page.$$eval('table.jobs tbody tr', (rows) => rows.map((tr) => tr.dataset.state));
    assert.ok(states.every((s) => s === 'running'), `only running jobs: ${states}`);
    await page.selectOption('select[name=state]', '');
  });

  it('a stream job shows its output as it arrives', async () => {
    const text = 'Relay streams this text, chunk by chunk, to every page that watches the job.';
    const r = await api(relay, 'POST', '/v1/jobs', { token: tokens.admin(), body: { kind: 'stream', payload: { text, chunk_chars: 4, interval_ms: 80 } } });
    await page.goto(`${relay.console}#/jobs/${r.json.id}`);
    await eventually(async () => {
      const t = await page.textContent('pre.output');
      return t.length > 0 && t.length < text.length && text.startsWith(t);
    }, 20_000, 'part of the text');
    await page.waitForSelector('.job[data-state=completed]', { timeout: 30_000 });
    assert.equal(await page.textContent('pre.output'), text);
    await shot(page, 'job-stream');
  });

  it('log lines show as they arrive, in order, with their level', async () => {
    // The built-in kinds log nothing: the job's log events are published
    // to its topic as a worker publishes them.
    const r = await api(relay, 'POST', '/v1/jobs', { token: tokens.admin(), body: { kind: 'sleep', payload: { ms: 60000, steps: 60 } } });
    const id = r.json.id;
    const log = (level, message) => api(relay, 'POST', '/v1/publish', { apiKey: API_KEY, body: { topic: `job:${id}`, type: 'job.log', data: { job_id: id, level, message } } });
    assert.equal((await log('info', 'before the page opened')).status, 200);
    await page.goto(`${relay.console}#/jobs/${id}`);
    await page.waitForSelector('.job[data-state=running]', { timeout: 20_000 });
    await page.waitForSelector('ol.logs li');
    await log('warn', 'disk 91 % full');
    await log('error', 'row 42: bad date');
    await eventually(async () => (await page.locator('ol.logs li').count()) === 3, 10_000, 'three log lines');
    const lines = await page.$$eval('ol.logs li', (lis) => lis.map((li) => [li.className, li.querySelector('.level').textContent, li.textContent]));
    assert.deepEqual(lines.map(([c, l]) => [c, l]), [['log-info', 'info'], ['log-warn', 'warn'], ['log-error', 'error']]);
    assert.match(lines[0][2], /before the page opened$/);
    assert.match(lines[2][2], /row 42: bad date$/);
    assert.match(await page.textContent('.card:has(ol.logs) h2'), /Logs \(3\)/);
    await shot(page, 'job-logs');
    await api(relay, 'POST', `/v1/jobs/${id}/cancel`, { token: tokens.admin(), body: {} });
    assert.deepEqual(page.errors, []);
  });
});
