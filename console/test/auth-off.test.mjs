// With RELAY_AUTH=off the console asks for nothing: everyone is the admin
// `anonymous`, with every page, live.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api, req, shot, startBrowser, startRelay } from './helpers.mjs';

describe('console: RELAY_AUTH=off', { skip: req.skip, timeout: 300_000 }, () => {
  let relay, browser;
  before(async () => {
    relay = await startRelay({ auth: 'off' });
    browser = await startBrowser();
  });
  after(async () => {
    await browser?.stop();
    await relay?.stop();
  });

  it('opens without a token, as an admin, and follows jobs live', async () => {
    const page = await browser.page();
    await page.goto(relay.console);
    await page.waitForSelector('header.top nav');
    assert.equal(await page.locator('textarea[name=token]').count(), 0, 'no sign-in');
    assert.match(await page.textContent('header.top .me'), /auth off/);
    assert.equal(await page.locator('header.top button:text-is("Sign out")').count(), 0);
    for (const p of ['Jobs', 'Submit', 'Dead letters', 'Topics', 'Cluster']) assert.equal(await page.locator(`nav >> text=${p}`).count(), 1, p);
    await page.waitForSelector('[data-conn=connected]', { timeout: 20_000 });
    const r = await api(relay, 'POST', '/v1/jobs', { body: { kind: 'sleep', payload: { ms: 500, steps: 2 } } });
    assert.equal(r.status, 202);
    await page.waitForSelector(`table.jobs tr[data-job="${r.json.id}"][data-state=completed]`, { timeout: 30_000 });
    await page.click('nav >> text=Cluster');
    await page.waitForSelector('table.gateways tbody tr', { timeout: 20_000 });
    assert.deepEqual(page.errors, []);
    await shot(page, 'auth-off');
  });
});
