// `npm test` in examples: every recipe's end-to-end test (<recipe>/*.test.mjs),
// one file at a time (each starts its own Redis, PostgreSQL, gateways and
// Chromium). `node test/run.mjs reconciliation` runs one recipe.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBundle } from '../lib/bundle.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
process.chdir(root);
ensureBundle();
const recipes = process.argv.length > 2 ? process.argv.slice(2) : readdirSync(root).filter((d) => !['lib', 'test', 'node_modules', 'workers'].includes(d) && existsSync(join(d, 'README.md')));
const files = recipes.flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.test.mjs')).sort().map((f) => join(d, f)));
if (!files.length) {
  console.error(`no test files for: ${recipes.join(', ')}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
