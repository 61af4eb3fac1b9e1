// `reconcile` from the submit form, on real processes: two CSV files picked
// in the form upload with visible progress (the upload is throttled so
// that it takes a while), their upload ids land in the payload, and the
// job's page shows the counts; each artifact the record lists downloads
// with its recorded sha256 (the section is absent when there are none).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually, req, shot, signIn, startBrowser, startRelay, tokens, waitJob } from './helpers.mjs';

const ROWS = 40_000;
/** The gateway's upload limit here: above the two files, below the one refused. */
const MAX_UPLOAD = 6 * 1024 * 1024;

/** Two sides: keys 0..ROWS on the left, 100..ROWS+100 on the right, every 7th amount differing. */
function files(dir) {
  const pad = 'x'.repeat(60);
  let left = 'ID,AMOUNT,NOTE\n';
  let right = 'REF;MONTANT;LIBELLE\n';
  for (let i = 0; i < ROWS; i++) left += `K${i},${i}.00,${pad}\n`;
  for (let i = 100; i < ROWS + 100; i++) right += `K${i};${i % 7 === 0 ? i + 1 : i};${pad}\n`;
  const l = join(dir, 'ledger.csv');
  const r = join(dir, 'bank.csv');
  writeFileSync(l, left);
  writeFileSync(r, right);
  let mismatches = 0;
  for (let i = 100; i < ROWS; i++) if (i % 7 === 0) mismatches++;
  return { left: l, right: r, expect: { total_left: ROWS, total_right: ROWS, matches: ROWS - 100 - mismatches, mismatches, left_only: 100, right_only: 100 } };
}

describe('console: reconcile with uploads', { skip: req.skip, timeout: 300_000 }, () => {
  let relay, browser, page, dir;
  const admin = tokens.admin();
  before(async () => {
    relay = await startRelay({ gatewayEnv: { RELAY_MAX_UPLOAD_BYTES: String(MAX_UPLOAD) } });
    browser = await startBrowser();
    page = await browser.page();
    dir = mkdtempSync(join(tmpdir(), 'relay-console-csv-'));
    await signIn(page, relay, { token: admin });
  });
  after(async () => {
    await browser?.stop();
    await relay?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('two files upload with progress from the form, and the job shows the reconciliation', async () => {
    const f = files(dir);
    await page.click('nav >> text=Submit');
    await page.click('button[role=tab]:text-is("reconcile")');
    await page.waitForSelector('.uploads');
    // Every upload progress value the page shows.
    await page.evaluate(() => {
      window.upload = [];
      new MutationObserver(() => {
        const p = document.querySelector('.upload-left progress');
        if (p && window.upload.at(-1) !== p.value) window.upload.push(p.value);
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 1024 * 1024 });
    await page.setInputFiles('input[name=left-file]', f.left);
    await eventually(async () => (await page.evaluate(() => window.upload.some((v) => v > 0 && v < 100))), 20_000, 'upload progress between 0 and 100');
    await shot(page, 'submit-reconcile-uploading');
    await page.waitForSelector('.upload-left .uploaded', { timeout: 60_000 });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await page.setInputFiles('input[name=right-file]', f.right);
    await page.waitForSelector('.upload-right .uploaded', { timeout: 60_000 });
    assert.match(await page.textContent('.upload-left .uploaded'), new RegExp(`ledger\\.csv: ${(readFileSync(f.left).length / 1048576).toFixed(1)} MiB`));
    assert.match(await page.textContent('.upload-left .columns'), /ID,AMOUNT,NOTE/);
    assert.match(await page.textContent('.upload-right .columns'), /REF;MONTANT;LIBELLE/);
    const payload = JSON.parse(await page.inputValue('textarea.code'));
    assert.ok(payload.left.upload_id && payload.right.upload_id && payload.left.upload_id !== payload.right.upload_id, 'both upload ids are in the payload');
    assert.equal(payload.left_key, 'ID');
    assert.deepEqual(payload.compare, [['AMOUNT', 'MONTANT']]);
    const seen = await page.evaluate(() => window.upload);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `upload progress never goes back: ${seen}`);
    await shot(page, 'submit-reconcile');

    await page.click('button[type=submit]');
    await page.waitForURL(/#\/jobs\/[^/?]+$/);
    const id = decodeURIComponent(page.url().split('/').pop());
    await page.waitForSelector('.job[data-state=completed]', { timeout: 60_000 });
    const record = await waitJob(relay, id, ['completed'], { token: admin });
    for (const [k, v] of Object.entries(f.expect)) assert.equal(record.result[k], v, k);
    const shown = await page.textContent('.card:has(h2:text-is("Result")) .json');
    for (const [k, v] of Object.entries(f.expect)) assert.ok(shown.includes(`${k}: ${v}`), `the result shows ${k}: ${v}`);
    assert.equal(await page.textContent('.percent'), '100 %');

    const artifacts = record.artifacts ?? [];
    if (artifacts.length === 0) {
      assert.equal(await page.locator('.card:has(h2:text-is("Artifacts"))').count(), 0, 'no artifacts section without artifacts');
      console.log('# this server records no artifacts (before v1.1): the download links were not exercised');
    } else {
      const rows = page.locator('table.artifacts tbody tr');
      assert.equal(await rows.count(), artifacts.length);
      for (const a of artifacts) {
        const [download] = await Promise.all([page.waitForEvent('download'), page.click(`table.artifacts a.download:has-text("${a.name}")`)]);
        assert.equal(download.suggestedFilename(), a.name);
        const body = readFileSync(await download.path());
        assert.equal(body.length, a.bytes, `${a.name}: its recorded size`);
        assert.equal(createHash('sha256').update(body).digest('hex'), a.sha256, `${a.name}: its recorded sha256`);
      }
    }
    await shot(page, 'job-reconcile');
    assert.deepEqual(page.errors, []);
  });

  it('a file over the upload limit is refused with the gateway\'s error', async () => {
    await page.click('nav >> text=Submit');
    await page.click('button[role=tab]:text-is("reconcile")');
    const big = join(dir, 'big.csv');
    writeFileSync(big, 'ID,AMOUNT\n' + 'K1,1.00\n'.repeat(Math.ceil(MAX_UPLOAD / 8) + 1000));
    await page.setInputFiles('input[name=left-file]', big);
    await page.waitForSelector('.upload-left [role=alert]', { timeout: 30_000 });
    assert.match(await page.textContent('.upload-left [role=alert]'), /TOO_LARGE/);
    assert.equal(await page.locator('.upload-left .uploaded').count(), 0);
    page.errors.length = 0;
  });
});
