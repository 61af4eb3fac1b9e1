// Headless Chromium (Debian's) running a page that uses the bundled client
// (dist/relay-client.js, with the browser's own WebSocket and fetch): it
// resumes through gateway kills and a page reload, and through the
// WebSocket -> SSE fallback behind a proxy that refuses upgrades.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { Stack, assertTools, eventually, jwt, publish, requires, sleep, startGateway, startNginx, startRedis } from '../helpers/env.mjs';

const req = requires('redis', 'nginx', 'binaries', 'chromium');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

describe('the bundled client in Chromium', { skip: req.skip }, () => {
  const stack = new Stack();
  let gws, pubGw, context, profile;

  before(async () => {
    assertTools(req);
    const redis = stack.add(await startRedis());
    gws = [await startGateway({ redis }), await startGateway({ redis })];
    gws.forEach((g) => stack.add(g));
    pubGw = stack.add(await startGateway({ redis }));
    profile = mkdtempSync(join(tmpdir(), 'relay-js-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: FLAGS,
    });
  });
  after(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await stack.stop();
  });

  async function open(nginx, topic) {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const token = jwt({ sub: 'zoe', topics: ['room:*'] });
    await page.goto(`${nginx.url}/test/browser/page.html#token=${encodeURIComponent(token)}&topic=${topic}`);
    const report = () => page.evaluate(() => window.report);
    return { page, errors, report };
  }

  /** Publishes `n` events through the gateway that is never killed, in the background. */
  function pump(topic, n, ms) {
    const state = { sent: 0 };
    state.done = (async () => {
      for (; state.sent < n; state.sent++) {
        await publish([pubGw], topic, 'msg', { n: state.sent });
        await sleep(ms);
      }
    })();
    return state;
  }

  it('WebSocket: resumes through two gateway kills and a page reload, nothing lost or twice', async () => {
    const nginx = stack.add(await startNginx({ gateways: gws }));
    const topic = 'room:browser-ws';
    const { page, errors, report } = await open(nginx, topic);
    await eventually(async () => (await report())?.state === 'connected', 20_000, 'the page to connect');
    assert.equal((await report()).transport, 'websocket');
    await eventually(() => page.evaluate(() => !!window.sub.position), 10_000, 'the subscription');
    const N = 400;
    const p = pump(topic, N, 8);
    await eventually(async () => (await report()).seen.length >= 60, 20_000, 'events on the page');
    for (const g of gws) {
      await g.kill();
      await eventually(async () => (await report()).seen.length >= p.sent - 5 && (await report()).state === 'connected', 20_000, 'the page to catch up');
      await g.start();
    }
    await page.reload();
    await eventually(async () => (await report())?.loads === 2, 10_000, 'the reloaded page');
    await p.done;
    await eventually(async () => (await report()).seen.length >= N, 30_000, `all ${N} events on the page`);
    const r = await report();
    assert.deepEqual(r.seen, Array.from({ length: N }, (_, i) => i), 'every event once, in order, across kills and a reload');
    assert.equal(r.resets, 0);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('a proxy refusing WebSocket upgrades: the page falls back to SSE and resumes through gateway kills', async () => {
    const nginx = stack.add(await startNginx({ gateways: gws, websocket: false }));
    const topic = 'room:browser-sse';
    const { page, errors, report } = await open(nginx, topic);
    await eventually(async () => (await report())?.transport === 'sse' && (await report()).state === 'connected', 30_000, 'the SSE fallback');
    await eventually(() => page.evaluate(() => !!window.sub.position), 10_000, 'the subscription');
    const N = 300;
    const p = pump(topic, N, 8);
    await eventually(async () => (await report()).seen.length >= 50, 20_000, 'events over SSE');
    for (const g of gws) {
      await g.kill();
      await sleep(500);
      await g.start();
    }
    await p.done;
    await eventually(async () => (await report()).seen.length >= N, 30_000, `all ${N} events on the page`);
    const r = await report();
    assert.deepEqual(r.seen, Array.from({ length: N }, (_, i) => i), 'every event once, in order');
    assert.ok(r.states.includes('connecting:websocket'), 'WebSocket was tried first');
    assert.equal(r.transport, 'sse', 'WebSocket is still refused: the page stays on SSE');
    assert.deepEqual(errors, []);
    await page.close();
  });
});
