// `npm test`: prints the core bundle's size (and fails over 8 KB gzipped),
// then runs the unit, integration and browser tests with node:test, one
// file at a time (the integration tests start real processes).
//
// `node scripts/test.mjs unit` (or `integration`, `browser`) runs one group.
// Tools the integration and browser tests need (redis-server, PostgreSQL,
// nginx, chromium, the gateway and worker binaries) missing make them fail
// with the reason, unless RELAY_TEST_ALLOW_SKIP=1 (then they skip, saying so).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BUDGET, bundleSize } from './size.mjs';

process.chdir(fileURLToPath(new URL('..', import.meta.url)));
const { min, gzip } = bundleSize();
console.log(`relay-client core bundle: ${min} bytes minified, ${gzip} bytes gzipped (budget ${BUDGET})`);
if (gzip > BUDGET) {
  console.error(`the core bundle is over its budget of ${BUDGET} bytes gzipped`);
  process.exit(1);
}
const groups = process.argv.length > 2 ? process.argv.slice(2) : ['unit', 'integration', 'browser'];
const files = groups.flatMap((g) =>
  readdirSync(`test/${g}`)
    .filter((f) => f.endsWith('.test.mjs'))
    .sort()
    .map((f) => `test/${g}/${f}`),
);
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
