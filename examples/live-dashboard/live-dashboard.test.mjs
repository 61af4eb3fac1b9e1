// The live-dashboard recipe end to end: business events posted to the
// recipe's feeder are fanned out with /v1/broadcast to per-organisation
// topics; two organisations' dashboards in headless Chromium, each with a
// token allowed only `dash:{its org}:*`, show their own KPIs live and
// nothing of the other's; a dashboard of another organisation is refused.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { API_KEY, SECRET, Stack, assertTools, browser, eventually, jwt, missingRoute, need, record, seen, startGateway, startPostgres, startRecipe, startRedis } from '../test/helpers.mjs';

const req = need('redis', 'postgres', 'binaries', 'chromium');
const TYPES = ['member.created', 'contribution.paid', 'contribution.paid', 'approval.pending', 'approval.approved', 'contribution.paid', 'approval.pending'];

/** A known sequence of business events of two organisations. */
const events = Array.from({ length: 42 }, (_, i) => {
  const type = TYPES[i % TYPES.length];
  return { org: i % 3 === 0 ? 'globex' : 'acme', type, member: `m${i}`, ...(type === 'contribution.paid' && { amount: 10 + i + 0.25 }) };
});

/** The KPIs these events give one organisation, as the tiles show them. */
function kpis(list, org) {
  const k = { members: 0, contributions: 0, amount: 0, pending: 0 };
  for (const e of list.filter((e) => e.org === org)) {
    if (e.type === 'member.created') k.members++;
    if (e.type === 'contribution.paid') (k.contributions++, (k.amount += e.amount));
    if (e.type === 'approval.pending') k.pending++;
    if (e.type === 'approval.approved') k.pending = Math.max(0, k.pending - 1);
  }
  return { members: String(k.members), contributions: String(k.contributions), amount: k.amount.toLocaleString('en', { minimumFractionDigits: 2 }), pending: String(k.pending) };
}

describe('live-dashboard recipe', { skip: req.skip }, () => {
  const stack = new Stack();
  let gw, site, chrome;

  before(async () => {
    assertTools(req);
    const redis = stack.add(await startRedis());
    const pg = stack.add(await startPostgres());
    gw = stack.add(await startGateway({ redis, pg })); // RELAY_AUTH=jwt with SECRET
    site = stack.add(await startRecipe('live-dashboard', { RELAY_URL: gw.url, RELAY_JWT_SECRET: SECRET, DEMO: '0', STATS_EVERY_MS: '1500' }));
    chrome = stack.add(await browser());
  });
  after(() => stack.stop());

  const post = async (path, body) => {
    const res = await fetch(site.url + path, { method: 'POST', headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    return JSON.parse(text);
  };
  const tiles = (page) => page.evaluate(() => Object.fromEntries(['members', 'contributions', 'amount', 'pending'].map((id) => [id, document.getElementById(id).textContent])));
  const showsKpis = (page, want, what) => eventually(async () => JSON.stringify(await tiles(page)) === JSON.stringify(want), 20_000, `${what}: ${JSON.stringify(want)}`);
  const dashboard = async (sub, org) => {
    const page = await chrome.open(`${site.url}/#token=${jwt({ sub, org, topics: [`dash:${org}:*`] })}`);
    await eventually(async () => (await page.textContent('#conn')) === 'connected · websocket', 30_000, `${org}'s dashboard to connect`);
    return page;
  };
  const feed = (page) => page.$$eval('#feed li', (lis) => lis.map((li) => ({ org: li.dataset.org, type: li.dataset.type, text: li.textContent })));

  let acme, globex, postedAt;

  it("each organisation's dashboard shows its own KPIs live, and nothing of the other's", async () => {
    acme = await dashboard('ana', 'acme');
    globex = await dashboard('gus', 'globex');
    await record(acme, '#contributions');

    const half = events.slice(0, 21);
    await post('/api/events', half);
    await showsKpis(acme, kpis(half, 'acme'), "acme's tiles after the first events");
    await showsKpis(globex, kpis(half, 'globex'), "globex's tiles after the first events");
    await post('/api/events', events.slice(21));
    postedAt = Date.now();
    await showsKpis(acme, kpis(events, 'acme'), "acme's tiles after all events");
    await showsKpis(globex, kpis(events, 'globex'), "globex's tiles after all events");
    assert.ok((await seen(acme, '#contributions')).length >= 3, 'the tiles changed live, event by event');

    for (const [page, org] of [[acme, 'acme'], [globex, 'globex']]) {
      const items = await feed(page);
      assert.equal(items.length, events.filter((e) => e.org === org).length, `${org}'s feed has each of its events once`);
      assert.deepEqual([...new Set(items.map((i) => i.org))], [org], `${org}'s feed has only ${org}'s events`);
      assert.deepEqual(page.errors, []);
    }
  });

  it('an announcement reaches every organisation at once (one /v1/broadcast to several topics)', async () => {
    const { event_ids } = await post('/api/notice', { text: 'Maintenance tonight' });
    assert.deepEqual(Object.keys(event_ids).sort(), ['dash:acme:activity', 'dash:globex:activity']);
    for (const page of [acme, globex]) {
      await eventually(async () => (await feed(page)).some((i) => i.type === 'notice' && i.text === 'Notice: Maintenance tonight'), 20_000, 'the notice on each dashboard');
    }
  });

  it('a dashboard opened later shows the current KPIs at once (the topic history)', async () => {
    await acme.reload();
    await showsKpis(acme, kpis(events, 'acme'), "acme's reloaded tiles");
    await eventually(async () => (await feed(acme)).filter((i) => i.type !== 'notice').length === events.filter((e) => e.org === 'acme').length, 10_000, "acme's feed again");
  });

  it("another organisation's dashboard is refused (the token's topics claim)", async () => {
    const page = await chrome.open(`${site.url}/#token=${jwt({ sub: 'ana', org: 'acme', topics: ['dash:acme:*'] })}&org=globex`);
    await eventually(async () => (await page.getAttribute('body', 'data-refused')) === 'true', 20_000, 'the refusal');
    assert.match(await page.textContent('#error'), /^FORBIDDEN/);
    assert.deepEqual(await tiles(page), { members: '–', contributions: '–', amount: '–', pending: '–' }, "none of globex's figures reached acme's user");
    assert.deepEqual(await feed(page), []);
    await page.close();
  });

  it('periodic statistics from a schedule, per organisation', async (t) => {
    const missing =
      (await missingRoute(gw.url, 'GET', '/v1/schedules', undefined, 'schedules')) ??
      (await missingRoute(gw.url, 'POST', '/v1/worker/lease', { kinds: ['probe.none'], max: 1, wait_ms: 0, worker: 'probe' }, 'workers over HTTP'));
    if (missing) return t.skip(`not in this build: ${missing}`);
    const tick = async (page) => Number(await page.getAttribute('#stats', 'data-tick'));
    const first = await eventually(async () => (await tick(acme)) || false, 30_000, "acme's first statistics");
    await eventually(async () => (await tick(acme)) > first, 30_000, 'a later tick of the schedule');
    await eventually(async () => (await tick(globex)) > 0, 30_000, "globex's statistics");
    const sched = await (await fetch(`${gw.url}/v1/schedules/dash-stats`, { headers: { 'x-api-key': API_KEY } })).json();
    assert.equal(sched.every_ms, 1500, JSON.stringify(sched));
    if (Date.now() - postedAt < 45_000) {
      // Every event is less than a minute old: each dashboard counts its own.
      const n = (org) => events.filter((e) => e.org === org).length;
      await eventually(async () => (await acme.textContent('#stats')).startsWith(`${n('acme')} events`), 10_000, "acme's count");
      await eventually(async () => (await globex.textContent('#stats')).startsWith(`${n('globex')} events`), 10_000, "globex's count");
    }
  });
});
