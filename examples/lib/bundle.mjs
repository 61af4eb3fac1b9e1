// The client bundle every recipe page loads: clients/js/dist/relay-client.js
// (`npm run build` in clients/js). Built here when it is missing or older
// than the client's sources, so that one command runs a recipe.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLIENT_DIR = fileURLToPath(new URL('../../clients/js', import.meta.url));
export const BUNDLE = join(CLIENT_DIR, 'dist', 'relay-client.js');

const newest = (dir) =>
  Math.max(...readdirSync(dir).map((f) => statSync(join(dir, f)).mtimeMs));

function npm(...args) {
  const r = spawnSync('npm', args, { cwd: CLIENT_DIR, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} in clients/js failed (${r.error?.message ?? `exit ${r.status}`})`);
}

/** Returns the bundle's path, building it first when needed. */
export function ensureBundle() {
  const fresh = existsSync(BUNDLE) && statSync(BUNDLE).mtimeMs >= newest(join(CLIENT_DIR, 'src'));
  if (fresh) return BUNDLE;
  if (!existsSync(join(CLIENT_DIR, 'node_modules'))) npm('ci', '--no-audit', '--no-fund');
  npm('run', 'build', '--silent');
  return BUNDLE;
}
