// Signing in and what a user sees, on real processes: a user token lists
// only that user's jobs, live from `user:{sub}`, and cannot open another's;
// the token lasts as long as the tab; a bad or expired token is refused;
// a token expiring during the session brings the sign-in back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api, eventually, jwt, req, shot, signIn, startBrowser, startRelay, tokens } from './helpers.mjs';

describe('console: users and sign-in', { skip: req.skip, timeout: 300_000 }, () => {
  let relay, browser;
  const alice = tokens.user('alice');
  const bob = tokens.user('bob');
  const submit = async (token, payload = { ms: 10, steps: 1 }) => (await api(relay, 'POST', '/v1/jobs', { token, body: { kind: 'sleep', payload } })).json.id;
  before(async () => {
    relay = await startRelay();
    browser = await startBrowser();
  });
  after(async () => {
    await browser?.stop();
    await relay?.stop();
  });

  it('a user token sees only its own jobs, and its new jobs live', async () => {
    const mine = [await submit(alice), await submit(alice)];
    const theirs = [await submit(bob), await submit(bob)];
    const page = await browser.page();
    await signIn(page, relay, { token: alice });
    await page.waitForSelector('table.jobs');
    assert.match(await page.textContent('.card h2'), /Your jobs \(alice\)/);
    await eventually(async () => (await page.locator('table.jobs tbody tr').count()) === 2, 10_000, 'two jobs');
    const ids = await page.$$eval('table.jobs tbody tr', (rows) => rows.map((r) => r.dataset.job));
    assert.deepEqual(ids.sort(), [...mine].sort());
    assert.equal(await page.locator('table.jobs th:text-is("owner")').count(), 0, 'no owner column for a user');

    const bobs = await submit(bob);
    const hers = await submit(alice, { ms: 1000, steps: 2 });
    await page.waitForSelector(`table.jobs tr[data-job="${hers}"][data-state=completed]`, { timeout: 30_000 });
    assert.equal(await page.locator(`table.jobs tr[data-job="${bobs}"]`).count(), 0);
    for (const id of theirs) assert.equal(await page.locator(`table.jobs tr[data-job="${id}"]`).count(), 0);
    await shot(page, 'jobs-user');

    // Another user's job is not there for her.
    await page.goto(`${relay.console}#/jobs/${theirs[0]}`);
    await page.waitForSelector('.job [role=alert]');
    assert.match(await page.textContent('.job [role=alert]'), /no such job/);
    assert.equal(await page.locator('.job .facts dd >> text=bob').count(), 0);
    assert.deepEqual(page.errors.filter((e) => !/404/.test(e)), []);
    await page.close();
  });

  it('the submit form has no owner field for a user, and the job is hers', async () => {
    const page = await browser.page();
    await signIn(page, relay, { token: alice });
    await page.click('nav >> text=Submit');
    await page.click('details.options summary');
    assert.equal(await page.locator('input[name=owner]').count(), 0);
    await page.fill('textarea.code', JSON.stringify({ ms: 10, steps: 1 }));
    await page.click('button[type=submit]');
    await page.waitForSelector('.job[data-state=completed]', { timeout: 30_000 });
    assert.equal(await page.textContent('.facts dt:text-is("owner") + dd'), 'alice');
    await page.close();
  });

  it('the token lasts as long as the tab: a reload keeps it, a new tab asks, sign out forgets it', async () => {
    const page = await browser.page();
    await signIn(page, relay, { token: alice });
    await page.reload();
    await page.waitForSelector('header.top .me');
    assert.match(await page.textContent('header.top .me'), /alice/);
    const other = await browser.page();
    await other.goto(relay.console);
    await other.waitForSelector('form textarea[name=token]');
    await other.close();
    await page.click('header.top button:text-is("Sign out")');
    await page.waitForSelector('form textarea[name=token]');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('relay-console:creds')), null);
    await page.reload();
    await page.waitForSelector('form textarea[name=token]');
    await page.close();
  });

  it('a token with a wrong signature, or expired, is refused at sign-in', async () => {
    const page = await browser.page();
    await page.goto(relay.console);
    await shot(page, 'sign-in');
    for (const [token, why] of [
      [jwt({ sub: 'mallory', admin: true }, 'not-the-secret-of-this-gateway'), /refused the token/],
      [jwt({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 3600 }), /refused the token/],
      ['not a token', /not a JWT/],
    ]) {
      await page.fill('textarea[name=token]', token);
      await page.click('form button[type=submit]');
      await eventually(async () => why.test((await page.textContent('form [role=alert]').catch(() => '')) ?? ''), 10_000, `the refusal ${why}`);
      assert.equal(await page.locator('header.top').count(), 0);
    }
    await page.close();
  });

  it('a token that expires during the session brings the sign-in back, saying so', async () => {
    const page = await browser.page();
    await signIn(page, relay, { token: jwt({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 4 }) });
    await page.waitForSelector('[data-conn=connected]', { timeout: 10_000 });
    await page.waitForSelector('form textarea[name=token]', { timeout: 20_000 });
    assert.match(await page.textContent('form [role=alert]'), /token expired/);
    await page.close();
  });
});
