// The multi-tab-sync recipe end to end, on each transport: two tabs of one
// user and a tab of another user, in headless Chromium, against real
// gateways with JWT auth, the recipe's backend publishing with the API key.
// A change made in one tab appears in the other tab of the same user and
// nowhere else; a tab that was offline catches up without loss.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SECRET, Stack, assertTools, browser, eventually, jwt, need, record, seen, startGateway, startNginx, startRecipe, startRedis } from '../test/helpers.mjs';

const req = need('redis', 'nginx', 'binaries', 'chromium');

describe('multi-tab-sync recipe', { skip: req.skip }, () => {
  const stack = new Stack();
  let direct, proxied, chrome;

  before(async () => {
    assertTools(req);
    const redis = stack.add(await startRedis());
    const gws = [await startGateway({ redis }), await startGateway({ redis })]; // RELAY_AUTH=jwt with SECRET
    gws.forEach((g) => stack.add(g));
    const nginx = stack.add(await startNginx({ gateways: gws, websocket: false }));
    direct = stack.add(await startRecipe('multi-tab-sync', { RELAY_URL: gws[0].url, RELAY_JWT_SECRET: SECRET }));
    proxied = stack.add(await startRecipe('multi-tab-sync', { RELAY_URL: nginx.url, RELAY_JWT_SECRET: SECRET }));
    chrome = stack.add(await browser());
  });
  after(() => stack.stop());

  const list = (page) => page.$$eval('#items li', (lis) => lis.map((li) => `${li.querySelector('span').textContent}${li.classList.contains('done') ? ' (done)' : ''}`));
  const stat = async (page, name) => Number(new RegExp(`${name} (\\d+)`).exec(await page.textContent('#stats'))[1]);
  const shows = (page, want, what) => eventually(async () => JSON.stringify(await list(page)) === JSON.stringify(want), 20_000, `${what}: ${JSON.stringify(want)}`);
  const add = async (page, text) => {
    await page.fill('#text', text);
    await page.press('#text', 'Enter');
  };
  const item = (page, text) => page.locator('#items li', { hasText: text });

  // The browser's own offline mode for one tab (DevTools network
  // emulation, kept while its session lives): requests fail, and the page
  // gets the offline and online events.
  const sessions = new Map();
  async function network(page, offline) {
    let cdp = sessions.get(page);
    if (!cdp) {
      sessions.set(page, (cdp = await chrome.context.newCDPSession(page)));
      await cdp.send('Network.enable');
    }
    await cdp.send('Network.emulateNetworkConditions', { offline, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  }

  async function scenario({ site, transport, expect, tag }) {
    const tab = async (sub) => {
      const page = await chrome.open(`${site.url}/#token=${jwt({ sub })}${transport ? `&transport=${transport}` : ''}`);
      await record(page, '#conn');
      await eventually(async () => (await page.textContent('#conn')) === `connected · ${expect}`, 30_000, `${sub}'s tab to connect over ${expect}`);
      return page;
    };
    const [a1, a2, b1] = [await tab(`alice-${tag}`), await tab(`alice-${tag}`), await tab(`bob-${tag}`)];

    // One tab's change appears in the user's other tab, and in no tab of another user.
    await add(a1, 'milk');
    await shows(a2, ['milk'], "alice's other tab");
    await add(b1, 'bread');
    await shows(b1, ['bread'], "bob's tab");
    await item(a2, 'milk').locator('input').check();
    await shows(a1, ['milk (done)'], 'a change made in the second tab, in the first');
    await shows(a2, ['milk (done)'], 'the same change, in the tab where it was made (it comes back as an event)');
    assert.deepEqual(await list(b1), ['bread'], "bob's tab shows none of alice's changes");
    assert.deepEqual(await list(a1), ['milk (done)'], "alice's tabs show none of bob's");

    // The second tab goes offline; the first keeps changing the list.
    await network(a2, true);
    await eventually(async () => (await a2.textContent('#conn')) === 'closed', 10_000, 'the offline tab to stop');
    for (let i = 1; i <= 5; i++) await add(a1, `item ${i}`);
    await shows(a1, ['milk (done)', 'item 1', 'item 2', 'item 3', 'item 4', 'item 5'], 'the first tab');
    await item(a1, 'item 3').locator('input').check();
    await item(a1, 'milk').locator('button').click();
    const final = ['item 1', 'item 2', 'item 3 (done)', 'item 4', 'item 5'];
    await shows(a1, final, 'the first tab, after more changes');
    assert.deepEqual(await list(a2), ['milk (done)'], 'the offline tab received nothing');

    // Back online: it catches up, every change once, in order, without reloading.
    await network(a2, false);
    await shows(a2, final, 'the tab that was offline');
    await eventually(async () => (await a2.textContent('#conn')) === `connected · ${expect}`, 30_000, 'the tab to reconnect');
    assert.equal(await stat(a2, 'events'), await stat(a1, 'events'), 'the tab that was offline got every event the other got, once each');
    assert.equal(await stat(a2, 'events'), 9, 'milk added and done, five items, one done, milk removed');
    assert.equal(await stat(a2, 'reloads'), 0, 'no change was missing (the revisions followed on)');
    assert.equal(await stat(a2, 'resets'), 0, 'Relay could vouch for every event');
    assert.equal(await stat(b1, 'events'), 1, "bob's tab received only bob's change");
    assert.deepEqual(await list(b1), ['bread']);
    for (const p of [a1, a2, b1]) {
      assert.deepEqual(p.errors, []);
      assert.ok((await seen(p, '#conn')).every((s) => !s.includes('·') || s.endsWith(expect) || s === 'connecting · websocket'), `only ${expect} (after WebSocket) was used: ${await seen(p, '#conn')}`);
    }
    return { a1, a2, b1 };
  }

  it("the recipe's development login: a token the gateway accepts, for a user named in the address", async () => {
    const page = await chrome.open(`${direct.url}/?user=carol`);
    await eventually(async () => (await page.textContent('#conn')) === 'connected · websocket', 30_000, 'the page to connect');
    assert.equal(await page.textContent('#who'), 'carol');
    await add(page, 'tea');
    await shows(page, ['tea'], "carol's tab");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  it('over WebSocket', () => scenario({ site: direct, transport: 'websocket', expect: 'websocket', tag: 'ws' }));
  it('over SSE (forced with the client option transports: ["sse"])', () => scenario({ site: direct, transport: 'sse', expect: 'sse', tag: 'sse' }));
  it('over long-polling (forced with transports: ["poll"])', () => scenario({ site: direct, transport: 'poll', expect: 'poll', tag: 'poll' }));
  it('behind a proxy that refuses WebSocket upgrades, two gateways: the tabs fall back to SSE by themselves', async () => {
    const { a1 } = await scenario({ site: proxied, transport: null, expect: 'sse', tag: 'proxy' });
    assert.ok((await seen(a1, '#conn')).includes('connecting · websocket'), 'WebSocket was tried first');
  });
});
