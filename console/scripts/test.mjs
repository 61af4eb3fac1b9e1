// `npm test`: type-checks the console, fails when the committed build
// (dist/) is not what the sources build to (it is rebuilt into a temporary
// folder and compared byte for byte), prints the assets' sizes, then runs
// the browser tests (test/*.test.mjs, headless Chromium on real processes)
// one file at a time.
//
// `node scripts/test.mjs jobs topics` runs only those test files. Missing
// tools (redis-server, PostgreSQL, chromium, the gateway and worker
// binaries) fail the tests with the reason, unless RELAY_TEST_ALLOW_SKIP=1.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from './build.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
process.chdir(root);

const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

const list = (dir) => readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath ?? d.path, d.name).slice(dir.length + 1)).sort();
const fresh = mkdtempSync(join(tmpdir(), 'relay-console-build-'));
try {
  const built = await build(fresh);
  let committed = [];
  try {
    committed = list(join(root, 'dist'));
  } catch {
    /* no dist */
  }
  const stale = JSON.stringify(committed) !== JSON.stringify([...built].sort()) || built.some((f) => !readFileSync(join(fresh, f)).equals(readFileSync(join(root, 'dist', f))));
  if (stale) {
    console.error(`console/dist is stale: it holds ${committed.join(', ') || 'nothing'}, the sources build to ${built.join(', ')}.\nRun \`npm run build\` in console/ and commit dist/.`);
    process.exit(1);
  }
  let total = 0;
  for (const f of built) {
    const b = readFileSync(join(fresh, f));
    const gz = gzipSync(b, { level: 9 }).length;
    total += gz;
    console.log(`console asset ${f}: ${b.length} bytes, ${gz} gzipped`);
  }
  console.log(`console assets: ${total} bytes gzipped in all; dist/ is up to date`);
} finally {
  rmSync(fresh, { recursive: true, force: true });
}

const only = process.argv.slice(2);
const files = readdirSync('test')
  .filter((f) => f.endsWith('.test.mjs') && (!only.length || only.some((o) => f.startsWith(o))))
  .sort()
  .map((f) => `test/${f}`);
if (!files.length) {
  console.error(`no test file matches ${only.join(', ')}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
