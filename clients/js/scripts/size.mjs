// Prints the core bundle's size, minified and gzipped, and fails over the budget.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

export const BUDGET = 8 * 1024;

export function bundleSize(path = new URL('../dist/relay-client.js', import.meta.url)) {
  const min = readFileSync(path);
  return { min: min.length, gzip: gzipSync(min, { level: 9 }).length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { min, gzip } = bundleSize();
  console.log(`relay-client core bundle: ${min} bytes minified, ${gzip} bytes gzipped (budget ${BUDGET})`);
  if (gzip > BUDGET) process.exit(1);
}
