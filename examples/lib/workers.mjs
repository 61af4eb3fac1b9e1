// The workers over HTTP of examples/workers/ (Node and Python), as the
// ai-streaming and ticket-pipeline recipes start them: how to run one, and
// which job kinds it took, read from the gateway's GET /v1/status.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WORKERS_DIR = fileURLToPath(new URL('../workers', import.meta.url));
const BUILT_IN = new Set(['sleep', 'stream', 'reconcile']);

/**
 * The command that runs examples/workers/<lang>, or null when there is
 * none yet. Node: `npm start` when the package has a start script, else its
 * `main`, else the first of worker.mjs, index.mjs, worker.js, index.js.
 * Python: the folder itself when it has __main__.py, else the first of
 * worker.py, main.py.
 */
export function workerCommand(lang) {
  const dir = join(WORKERS_DIR, lang);
  const first = (names) => names.find((n) => existsSync(join(dir, n)));
  if (lang === 'node') {
    const pkg = existsSync(join(dir, 'package.json')) ? JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) : {};
    if (pkg.scripts?.start) return { cmd: 'npm', args: ['start', '--silent'], cwd: dir };
    const main = pkg.main && existsSync(join(dir, pkg.main)) ? pkg.main : first(['worker.mjs', 'index.mjs', 'worker.js', 'index.js']);
    return main ? { cmd: process.execPath, args: [join(dir, main)], cwd: dir } : null;
  }
  if (existsSync(join(dir, '__main__.py'))) return { cmd: 'python3', args: [dir], cwd: dir };
  const main = first(['worker.py', 'main.py']);
  return main ? { cmd: 'python3', args: [join(dir, main)], cwd: dir } : null;
}

/**
 * Starts the worker of `lang` against Relay (settings in its environment:
 * RELAY_URL and RELAY_API_KEY, as every recipe's), its output on this
 * process's. Returns the child, or null when the worker is not there.
 */
export function startWorker(lang, { relayUrl, apiKey, env = {} }) {
  const c = workerCommand(lang);
  if (!c) return null;
  const child = spawn(c.cmd, c.args, { cwd: c.cwd, env: { ...process.env, RELAY_URL: relayUrl, RELAY_API_KEY: apiKey, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
  process.on('exit', () => child.kill('SIGTERM'));
  return child;
}

/**
 * The job kinds workers over HTTP have asked for, from GET /v1/status
 * (those that are not Relay's built-in kinds); waits up to `ms` for one
 * that `match`es.
 */
export async function findKind({ relayUrl, apiKey, match, ms = 20_000 }) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(`${relayUrl}/v1/status`, { headers: { 'x-api-key': apiKey } });
      const status = res.ok ? await res.json() : {};
      const kinds = [...new Set((status.workers ?? []).flatMap((w) => w.kinds ?? []))].filter((k) => !BUILT_IN.has(k));
      const kind = kinds.find((k) => match.test(k)) ?? (kinds.length === 1 ? kinds[0] : undefined);
      if (kind) return kind;
    } catch {
      /* Relay not up yet */
    }
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 250));
  }
}
