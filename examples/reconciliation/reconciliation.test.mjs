// The reconciliation recipe end to end: the page in headless Chromium
// uploads two CSV files to a real gateway, starts `reconcile` on a real
// worker, shows its progress live and the result; the full lists are
// offered as downloads when the server writes artifacts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { API_KEY, Stack, assertTools, browser, eventually, need, record, seen, startGateway, startPostgres, startRecipe, startRedis, startWorker } from '../test/helpers.mjs';

const req = need('redis', 'postgres', 'binaries', 'chromium');

/**
 * A back-office file (`,`, decimal point) and a partner file (`;`, BOM,
 * decimal comma, shorter numbers) with known differences, and the counts
 * a correct reconciliation finds.
 */
function files(dir, n) {
  const left = ['ID,AMOUNT,DATE'];
  const right = ['\uFEFFREF;MONTANT;DATE_OP'];
  const want = { total_left: n, total_right: 0, matches: 0, mismatches: 0, left_only: 0, right_only: 0 };
  for (let i = 0; i < n; i++) {
    const cents = (i * 7919) % 100_000;
    left.push(`TX${i},${(cents / 100).toFixed(2)},2025-01-${String((i % 28) + 1).padStart(2, '0')}`);
    if (i % 50 === 0) {
      want.left_only++;
      continue;
    }
    const other = i % 7 === 3 ? cents + 100 : cents;
    right.push(`TX${i};${String(other / 100).replace('.', ',')};2025-01-01`);
    want.total_right++;
    if (other === cents) want.matches++;
    else want.mismatches++;
  }
  for (let j = 0; j < 321; j++, want.right_only++, want.total_right++) right.push(`PX${j};1,5;2025-02-01`);
  const paths = { left: join(dir, 'back-office.csv'), right: join(dir, 'partner.csv') };
  writeFileSync(paths.left, left.join('\n') + '\n');
  writeFileSync(paths.right, right.join('\r\n') + '\r\n');
  return { paths, want };
}

describe('reconciliation recipe', { skip: req.skip }, () => {
  const stack = new Stack();
  let gw, site, chrome, dir;

  before(async () => {
    assertTools(req);
    const redis = stack.add(await startRedis());
    const pg = stack.add(await startPostgres());
    // As scripts/relay-up runs it by default: RELAY_AUTH=off, one API key.
    gw = stack.add(await startGateway({ redis, pg, env: { RELAY_AUTH: 'off' } }));
    stack.add(await startWorker({ redis, pg }));
    site = stack.add(await startRecipe('reconciliation', { RELAY_URL: gw.url }));
    chrome = stack.add(await browser());
    dir = mkdtempSync(join(tmpdir(), 'relay-recipe-csv-'));
    await eventually(async () => (await fetch(`${gw.url}/v1/jobs?limit=1`, { headers: { 'x-api-key': API_KEY } })).ok, 30_000, 'the job API');
  });
  after(async () => {
    await stack.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('uploads both files, shows live progress to 100 % and the counts; a reload follows the same job', async (t) => {
    const { paths, want } = files(dir, 200_000);
    const page = await chrome.open(site.url);
    await record(page, '#percent');
    await record(page, '#step');
    await page.setInputFiles('#left', paths.left);
    await page.setInputFiles('#right', paths.right);
    await page.click('#start');

    await eventually(async () => (await page.textContent('#state')) === 'completed', 180_000, 'the job to complete on the page');
    const shown = {};
    for (const k of Object.keys(want)) shown[k] = Number(await page.textContent(`#${k}`));
    assert.deepEqual(shown, want, 'the page shows what a correct reconciliation finds');
    assert.equal(await page.$eval('#left-upload', (e) => e.value), 100, 'the back-office upload showed its progress to the end');
    assert.equal(await page.$eval('#right-upload', (e) => e.value), 100, 'the partner upload showed its progress to the end');

    const percents = (await seen(page, '#percent')).map((s) => parseInt(s, 10));
    assert.equal(percents.at(-1), 100, `progress ends at 100 %: ${percents}`);
    assert.ok(percents.some((p) => p > 0 && p < 100), `progress was seen between 0 and 100 %, live: ${percents}`);
    assert.deepEqual([...percents].sort((a, b) => a - b), percents, `progress only went up: ${percents}`);
    assert.ok((await seen(page, '#step')).includes('step: match'), 'the matching step was shown');

    // The page's job is the one Relay recorded, with the same result.
    const id = await page.textContent('#job-id');
    const rec = await (await fetch(`${gw.url}/v1/jobs/${id}`, { headers: { 'x-api-key': API_KEY } })).json();
    assert.equal(rec.state, 'completed');
    for (const [k, v] of Object.entries(want)) assert.equal(rec.result[k], v, k);

    // A reload follows the same job (its id is in the address) and shows it whole.
    await page.reload();
    await eventually(async () => (await page.textContent('#state')) === 'completed' && Number(await page.textContent('#matches')) === want.matches, 20_000, 'the reloaded page');
    assert.equal(await page.textContent('#percent'), '100 %');
    assert.deepEqual(page.errors, []);

    await t.test('the full lists as downloads (artifacts)', async (t) => {
      if (!Array.isArray(rec.artifacts) || !rec.artifacts.length) {
        return t.skip('the job record lists no `artifacts`: GET /v1/jobs/{id}/artifacts/{name} is not in this build');
      }
      const names = await page.$$eval('#artifacts a', (as) => as.map((a) => a.dataset.artifact));
      assert.deepEqual(names.sort(), ['left_only.csv', 'matches.csv', 'mismatches.csv', 'right_only.csv']);
      // The link the page offers serves the whole list: a header and one line per key.
      const lines = async (name) =>
        page.evaluate(async (n) => {
          const a = document.querySelector(`#artifacts a[data-artifact="${n}"]`);
          const text = await (await fetch(a.href)).text();
          return text.trim().split(/\r?\n/).length;
        }, name);
      assert.equal(await lines('left_only.csv'), want.left_only + 1);
      assert.equal(await lines('right_only.csv'), want.right_only + 1);
      assert.equal(await lines('mismatches.csv'), want.mismatches + 1);
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#artifacts a[data-artifact="left_only.csv"]')]);
      assert.equal(download.suggestedFilename(), 'left_only.csv', 'clicking a link downloads the file');
    });
    await page.close();
  });

  it('the sample files of the README give the counts it names', async () => {
    const sample = (f) => fileURLToPath(new URL(`samples/${f}`, import.meta.url));
    const page = await chrome.open(site.url);
    await page.setInputFiles('#left', sample('back-office.csv'));
    await page.setInputFiles('#right', sample('partner.csv'));
    await page.click('#start');
    await eventually(async () => (await page.textContent('#state')) === 'completed', 60_000, 'the sample job');
    const shown = {};
    for (const k of ['total_left', 'total_right', 'matches', 'mismatches', 'left_only', 'right_only']) shown[k] = Number(await page.textContent(`#${k}`));
    assert.deepEqual(shown, { total_left: 40, total_right: 39, matches: 31, mismatches: 5, left_only: 4, right_only: 3 });
    await page.close();
  });
});
