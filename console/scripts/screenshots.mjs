// `npm run screenshots`: the pictures of the README's "See it" section
// (docs/img/console-*.png), taken from a real Relay (the test bench's
// processes) with a few jobs in every state. Shrunk with pngquant when it
// is installed (apt-get install pngquant).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_KEY, api, eventually, signIn, startBrowser, startRelay, tokens, waitJob } from '../test/helpers.mjs';

const OUT = new URL('../../docs/img/', import.meta.url).pathname;
const admin = tokens.admin();
const submit = async (kind, payload, extra = {}) => (await api(relay, 'POST', '/v1/jobs', { token: admin, body: { kind, payload, ...extra } })).json.id;

/** The viewport down to the end of the page's content, at most 760 px high. */
async function snap(page, name) {
  const bottom = await page.evaluate(() => Math.ceil(document.querySelector('main').getBoundingClientRect().bottom) + 20);
  await page.screenshot({ path: join(OUT, `${name}.png`), clip: { x: 0, y: 0, width: 1200, height: Math.min(760, bottom) } });
}

const relay = await startRelay();
const browser = await startBrowser();
const dir = mkdtempSync(join(tmpdir(), 'relay-console-shots-'));
try {
  mkdirSync(OUT, { recursive: true });
  const page = await browser.page();
  await page.setViewportSize({ width: 1200, height: 760 });
  await signIn(page, relay, { token: admin });

  // Jobs in every state.
  let left = 'ID,AMOUNT,LABEL\n';
  let right = 'REF;MONTANT;LIBELLE\n';
  for (let i = 1; i <= 5000; i++) left += `TX${i},${(i * 7.31).toFixed(2)},payment ${i}\n`;
  for (let i = 40; i <= 5040; i++) right += `TX${i};${i % 97 === 0 ? (i * 7.31 + 1).toFixed(2) : (i * 7.31).toFixed(2)};paiement ${i}\n`;
  writeFileSync(join(dir, 'back-office.csv'), left);
  writeFileSync(join(dir, 'partner.csv'), right);
  await page.click('nav >> text=Submit');
  await page.click('button[role=tab]:text-is("reconcile")');
  await page.setInputFiles('input[name=left-file]', join(dir, 'back-office.csv'));
  await page.waitForSelector('.upload-left .uploaded');
  await page.setInputFiles('input[name=right-file]', join(dir, 'partner.csv'));
  await page.waitForSelector('.upload-right .uploaded');
  await snap(page, 'console-submit');
  await page.click('button[type=submit]');
  await page.waitForSelector('.job[data-state=completed]', { timeout: 60_000 });
  await snap(page, 'console-result');

  const failed = await submit('sleep', { ms: 10, steps: 1, fail_attempts: 3 }, { max_attempts: 2 });
  await submit('stream', { text: 'Relay streams output chunk by chunk.', chunk_chars: 6, interval_ms: 30 });
  await submit('sleep', { ms: 200, steps: 2 });
  const cancelled = await submit('sleep', { ms: 60_000, steps: 60 });
  await waitJob(relay, cancelled, ['running'], { token: admin });
  await api(relay, 'POST', `/v1/jobs/${cancelled}/cancel`, { token: admin, body: {} });
  await submit('sleep', { ms: 10 }, { delay_ms: 3_600_000 });
  await waitJob(relay, failed, ['failed'], { token: admin });
  const running = await submit('sleep', { ms: 40_000, steps: 40 });
  await waitJob(relay, running, ['running'], { token: admin });

  await page.click('nav >> text=Jobs');
  await page.waitForSelector(`table.jobs tr[data-job="${running}"]`);
  await eventually(async () => (await page.locator('table.jobs tbody tr').count()) >= 7, 20_000, 'the jobs');
  await eventually(async () => Number(await page.locator(`tr[data-job="${running}"] progress`).getAttribute('value')) >= 10, 30_000, 'the running job to move');
  await snap(page, 'console-jobs');

  const text =
    'Relay keeps every event of this job: progress, logs and this streamed text. Reload the page in the middle ' +
    'and the answer comes back whole, then goes on live from where it was, on any gateway, over WebSocket, SSE or long-polling.';
  const streaming = await submit('stream', { text, chunk_chars: 3, interval_ms: 50 });
  await page.goto(`${relay.console}#/jobs/${streaming}`);
  await eventually(async () => (await page.textContent('pre.output')).length > text.length / 2, 30_000, 'half the text');
  await snap(page, 'console-job');

  await page.click('nav >> text=Cluster');
  await page.waitForSelector('table.workers tbody tr');
  await snap(page, 'console-cluster');

  await page.click('nav >> text=Topics');
  await page.fill('input[name=topic]', 'chat:room1');
  await page.click('form.row button[type=submit]');
  await eventually(async () => (await page.locator('[data-status=live]').count()) === 1, 20_000, 'the subscription');
  for (const [type, data] of [
    ['message.new', { from: 'zoe', text: 'deploy is green' }],
    ['order.shipped', { order: 1042, carrier: 'DHL' }],
  ])
    await api(relay, 'POST', '/v1/publish', { apiKey: API_KEY, body: { topic: 'chat:room1', type, data } });
  await page.click('form.publish button[type=submit]');
  await eventually(async () => (await page.locator('li.event').count()) === 3, 10_000, 'the events');
  await snap(page, 'console-topics');

  const shots = ['submit', 'result', 'jobs', 'job', 'cluster', 'topics'].map((n) => join(OUT, `console-${n}.png`));
  const q = spawnSync('pngquant', ['--force', '--skip-if-larger', '--quality=70-90', '--ext', '.png', ...shots], { stdio: 'inherit' });
  if (q.error) console.log('pngquant is not installed: the pictures are not shrunk');
  console.log(`saved ${shots.join(', ')}`);
} finally {
  await browser.stop();
  await relay.stop();
  rmSync(dir, { recursive: true, force: true });
}
