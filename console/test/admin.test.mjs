// The server pages, on real processes: dead letters re-driven from the
// console; the cluster page's gateways, workers and queue counts refreshed
// on their own; an admin token and an API key both accepted for them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { API_KEY, api, eventually, req, shot, signIn, startBrowser, startRelay, tokens, waitJob } from './helpers.mjs';

describe('console: dead letters and cluster', { skip: req.skip, timeout: 300_000 }, () => {
  let relay, browser, page;
  const admin = tokens.admin();
  before(async () => {
    relay = await startRelay();
    browser = await startBrowser();
    page = await browser.page();
    await signIn(page, relay, { token: admin });
  });
  after(async () => {
    await browser?.stop();
    await relay?.stop();
  });

  it('a job that failed every attempt is a dead letter; its page shows each attempt; re-drive submits it again', async () => {
    const payload = { ms: 10, steps: 1, fail_attempts: 5 };
    const r = await api(relay, 'POST', '/v1/jobs', { token: admin, body: { kind: 'sleep', payload, max_attempts: 2 } });
    assert.equal(r.status, 202);
    const id = r.json.id;
    await waitJob(relay, id, ['failed'], { token: admin }, 60_000);

    await page.click('nav >> text=Dead letters');
    const row = `table.dead tr[data-job="${id}"]`;
    await page.waitForSelector(row, { timeout: 20_000 });
    assert.match(await page.textContent(row), /failing attempt 2 of the first 5 on purpose/);
    assert.match(await page.textContent(row), /2\/2/);
    await shot(page, 'dead-letters');

    await page.click(`${row} button[name=redrive]`);
    await page.waitForSelector(`${row} .redriven a`, { timeout: 10_000 });
    const newId = (await page.textContent(`${row} .redriven a`)).trim();
    assert.notEqual(newId, id);
    const again = (await api(relay, 'GET', `/v1/jobs/${newId}`, { token: admin })).json;
    assert.equal(again.kind, 'sleep');
    assert.deepEqual(again.payload, payload, 'the new job has the same payload');
    const list = (await api(relay, 'GET', '/v1/dead-letters', { token: admin })).json;
    assert.ok(!list.jobs.some((j) => j.id === id), 'the re-driven job left the dead letters');
    await shot(page, 'dead-letters-redriven');

    // The failed job's page: each attempt, its error, the final failure.
    await page.click(`${row} a >> text=${id}`);
    await page.waitForSelector('.job[data-state=failed]');
    await eventually(async () => (await page.locator('.attempt-list li').count()) >= 4, 10_000, 'the attempts');
    const attempts = await page.$$eval('.attempt-list li', (lis) => lis.map((li) => li.textContent));
    assert.match(attempts[0], /attempt 1 started/);
    assert.match(attempts[1], /attempt 1 failed: failing attempt 1 of the first 5 on purpose; retry in/);
    assert.match(attempts[2], /attempt 2 started/);
    assert.match(attempts.at(-1), /failed after 2 attempts: failing attempt 2/);
    assert.match(await page.textContent('.job [role=alert]'), /^Failed: failing attempt 2/);
    assert.match(await page.textContent('.facts .fact-attempts dd'), /2 of 2/);
    await shot(page, 'job-failed');
    assert.deepEqual(page.errors, []);
    // The new job fails again the same way (its payload says so).
    await waitJob(relay, newId, ['failed'], { token: admin }, 60_000);
  });

  it('the cluster page lists the gateway, the worker and the queues, and refreshes the counts by itself', async () => {
    await page.click('nav >> text=Cluster');
    await page.waitForSelector(`table.gateways tr[data-gateway="gw-${relay.gateway.port}"]`, { timeout: 20_000 });
    await page.waitForSelector('table.workers tbody tr', { timeout: 20_000 });
    assert.match(await page.textContent('table.workers tbody tr'), /reconcile, sleep, stream/);
    assert.match(await page.textContent('table.workers tbody tr'), /Rust/);
    const cell = (kind, col) => page.textContent(`table.queues tr[data-kind=${kind}] td.${col}`);
    await page.waitForSelector('table.queues tr[data-kind=sleep]');
    assert.equal(await cell('sleep', 'delayed'), '0');
    assert.equal(await cell('sleep', 'running'), '0');
    await page.evaluate(() => (window.notReloaded = true));
    const delayed = await api(relay, 'POST', '/v1/jobs', { token: admin, body: { kind: 'sleep', payload: { ms: 10 }, delay_ms: 600000 } });
    const running = await api(relay, 'POST', '/v1/jobs', { token: admin, body: { kind: 'sleep', payload: { ms: 120000, steps: 10 } } });
    await waitJob(relay, running.json.id, ['running'], { token: admin });
    await eventually(async () => (await cell('sleep', 'delayed')) === '1' && (await cell('sleep', 'running')) === '1', 20_000, 'the counts to refresh');
    assert.equal(await page.evaluate(() => window.notReloaded), true);
    assert.match(await page.textContent('table.queues tr[data-kind=sleep] td.dead'), /^\d+$/);
    await shot(page, 'cluster');
    for (const j of [delayed, running]) await api(relay, 'POST', `/v1/jobs/${j.json.id}/cancel`, { token: admin, body: {} });
    assert.deepEqual(page.errors, []);
  });

  it('a user token with an API key sees the server pages through the key', async () => {
    const p = await browser.page();
    await signIn(p, relay, { token: tokens.user('uma'), apiKey: API_KEY });
    assert.equal(await p.locator('nav >> text=Cluster').count(), 1);
    await p.click('nav >> text=Cluster');
    await p.waitForSelector('table.gateways tbody tr', { timeout: 20_000 });
    await p.click('nav >> text=Dead letters');
    await p.waitForSelector('table.dead, .empty', { timeout: 20_000 });
    assert.deepEqual(p.errors, []);
    await p.close();
  });

  it('a user token alone gets no server pages', async () => {
    const p = await browser.page();
    await signIn(p, relay, { token: tokens.user('uma') });
    assert.equal(await p.locator('nav >> text=Cluster').count(), 0);
    assert.equal(await p.locator('nav >> text=Dead letters').count(), 0);
    await p.goto(`${relay.console}#/cluster`);
    assert.match(await p.textContent('main'), /sign in with an admin token or an API key/);
    await p.close();
  });

  it('a wrong API key is refused at sign-in', async () => {
    const p = await browser.page();
    await p.goto(relay.console);
    await p.fill('input[name=api-key]', 'not-the-key-0123456789');
    await p.click('form button[type=submit]');
    await p.waitForSelector('form [role=alert]');
    assert.match(await p.textContent('form [role=alert]'), /refused the API key/);
    await p.close();
  });
});
