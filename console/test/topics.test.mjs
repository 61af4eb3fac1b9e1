// The topics page, on real processes: a watched topic receives an event
// published from the page (POST /v1/send) and one from a backend
// (POST /v1/publish); the retained history is replayed on request; a
// topic the token does not allow is refused in its pane.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { API_KEY, api, eventually, req, shot, signIn, startBrowser, startRelay, tokens } from './helpers.mjs';

describe('console: topics', { skip: req.skip, timeout: 300_000 }, () => {
  let relay, browser, page;
  before(async () => {
    relay = await startRelay();
    browser = await startBrowser();
    page = await browser.page();
    await signIn(page, relay, { token: tokens.user('tess', { topics: ['chat:*'], publish: ['chat:*'] }) });
    await page.click('nav >> text=Topics');
  });
  after(async () => {
    await browser?.stop();
    await relay?.stop();
  });

  const pane = (topic) => `.pane[data-topic="${topic}"]`;
  const status = (topic) => page.locator(`.card:has(${pane(topic)}) [data-status]`).getAttribute('data-status');
  async function watch(topic, from = 'now') {
    await page.fill('input[name=topic]', topic);
    await page.selectOption('select[name=from]', from);
    await page.click('form.row button[type=submit]');
    await page.waitForSelector(pane(topic));
  }

  it('a watched topic shows an event published from the page, then one from a backend', async () => {
    await watch('chat:room1');
    await eventually(async () => (await status('chat:room1')) === 'live', 20_000, 'the subscription');
    await page.fill('input[name=type]', 'message.new');
    await page.fill('form.publish textarea', JSON.stringify({ text: 'hello from the console' }));
    await page.click('form.publish button[type=submit]');
    await page.waitForSelector('form.publish .published');
    const said = await page.textContent('form.publish .published');
    const eventId = said.match(/as event (\S+)$/)[1];
    await page.waitForSelector(`${pane('chat:room1')} li.event`, { timeout: 10_000 });
    const first = await page.textContent(`${pane('chat:room1')} li.event`);
    assert.match(first, /message\.new/);
    assert.ok(first.includes(eventId), 'the event id the send answered');
    assert.match(first, /"text":"hello from the console"/);

    const r = await api(relay, 'POST', '/v1/publish', { apiKey: API_KEY, body: { topic: 'chat:room1', type: 'order.shipped', data: { order: 42 } } });
    assert.equal(r.status, 200);
    await eventually(async () => (await page.locator(`${pane('chat:room1')} li.event`).count()) === 2, 10_000, 'the backend event');
    assert.match(await page.textContent(`${pane('chat:room1')} li.event >> nth=0`), /order\.shipped.*"order":42/);
    // An event unfolds into its JSON.
    await page.click(`${pane('chat:room1')} li.event >> nth=0 >> summary`);
    assert.match(await page.textContent(`${pane('chat:room1')} li.event >> nth=0 >> .json`), /order: 42/);
    await shot(page, 'topics');
  });

  it('"from the retained history" replays the events published before the subscription', async () => {
    for (const n of [1, 2, 3]) await api(relay, 'POST', '/v1/publish', { apiKey: API_KEY, body: { topic: 'chat:room2', type: 'message.new', data: { n } } });
    await watch('chat:room2', 'start');
    await eventually(async () => (await page.locator(`${pane('chat:room2')} li.event`).count()) === 3, 20_000, 'the replayed events');
    const texts = await page.$$eval(`${pane('chat:room2')} li.event code.preview`, (els) => els.map((e) => e.textContent));
    assert.deepEqual(texts, ['{"n":3}', '{"n":2}', '{"n":1}'], 'newest first');
  });

  it('a topic the token does not allow is refused in its pane', async () => {
    await watch('secret:plans');
    await eventually(async () => (await status('secret:plans')) === 'refused', 20_000, 'the refusal');
    assert.match(await page.textContent(`${pane('secret:plans')} [role=alert]`), /FORBIDDEN/);
    // The others are still live.
    assert.equal(await status('chat:room1'), 'live');
  });

  it('publishing where the token may not is refused with the server\'s error', async () => {
    await page.fill('input[name=publish-topic]', 'news:today');
    await page.click('form.publish button[type=submit]');
    await page.waitForSelector('form.publish [role=alert]');
    assert.match(await page.textContent('form.publish [role=alert]'), /FORBIDDEN/);
    await page.fill('input[name=publish-topic]', '');
    // The browser logs the refused request; nothing else went wrong.
    assert.deepEqual(page.errors.map((e) => e.replace(/ \(http.*/, '')), ['console: Failed to load resource: the server responded with a status of 403 (Forbidden)']);
    page.errors.length = 0;
  });

  it('unsubscribing closes the pane; watched topics survive a reload', async () => {
    await page.click(`.card:has(${pane('secret:plans')}) button:text-is("Unsubscribe")`);
    await page.waitForSelector(pane('secret:plans'), { state: 'detached' });
    await page.reload();
    await page.waitForSelector(pane('chat:room1'));
    await page.waitForSelector(pane('chat:room2'));
    assert.equal(await page.locator(pane('secret:plans')).count(), 0);
    await eventually(async () => (await status('chat:room1')) === 'live', 20_000, 'live again');
    assert.deepEqual(page.errors, []);
  });
});
