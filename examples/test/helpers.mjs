// What the recipe tests share: the real processes of the client's tests
// (redis-server, PostgreSQL, relay-gateway, relay-worker and nginx on free
// loopback ports, from clients/js/test/helpers/env.mjs), each recipe's own
// run command as a child process, headless Chromium, and the checks that
// name a server feature a recipe waits for.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALLOW_SKIP, API_KEY, eventually, freePort, requires } from '../../clients/js/test/helpers/env.mjs';

export * from '../../clients/js/test/helpers/env.mjs';

export const EXAMPLES = fileURLToPath(new URL('..', import.meta.url));
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let playwright;
try {
  playwright = await import('playwright-core');
} catch {
  playwright = null;
}

/**
 * `describe` options for a suite needing these tools (see env.mjs's
 * `requires`), plus playwright-core: missing ones fail the suite with the
 * reason, or skip it saying so with RELAY_TEST_ALLOW_SKIP=1.
 */
export function need(...tools) {
  const req = requires(...tools);
  if (playwright || !tools.includes('chromium')) return req;
  const why = [req.skip?.replace(/^skipped \(RELAY_TEST_ALLOW_SKIP=1\): /, '') ?? req.missing, 'playwright-core is not installed (npm ci in examples)'].filter(Boolean).join('; ');
  return ALLOW_SKIP ? { skip: `skipped (RELAY_TEST_ALLOW_SKIP=1): ${why}` } : { missing: why };
}

/** Headless Chromium with a fresh profile; `close()` removes it. */
export async function browser() {
  const profile = mkdtempSync(join(tmpdir(), 'relay-recipe-chromium-'));
  const context = await playwright.chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', headless: true, args: FLAGS });
  return {
    context,
    /** A new tab on `url`; `errors` collects the page's uncaught errors. */
    async open(url) {
      const page = await context.newPage();
      page.errors = [];
      page.on('pageerror', (e) => page.errors.push(String(e)));
      await page.goto(url);
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Starts a recipe's run command (`node <recipe>/<script>`) with `env`, on
 * a free port, and waits for its page to be served. The child gets no
 * RELAY_ variable of this process, only those given.
 */
export async function startRecipe(recipe, env = {}, script = 'run.mjs') {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `relay-recipe-${recipe}-`));
  const log = join(dir, 'out.log');
  const fd = openSync(log, 'a');
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RELAY_')));
  const child = spawn(process.execPath, [join(EXAMPLES, recipe, script)], {
    env: { ...base, PORT: String(port), RELAY_API_KEY: API_KEY, ...env },
    stdio: ['ignore', fd, fd],
  });
  let exited = false;
  child.on('exit', () => (exited = true));
  const output = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
  const url = `http://127.0.0.1:${port}`;
  await eventually(async () => {
    if (exited) throw new Error(`${recipe}/${script} exited: ${output().slice(-2000)}`);
    return (await fetch(`${url}/config.json`, { signal: AbortSignal.timeout(1000) })).ok;
  }, 60_000, `${recipe}/${script} to serve its page`);
  return {
    url,
    output,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        await eventually(() => exited, 10_000, `${recipe} to stop`).catch(() => child.kill('SIGKILL'));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Records every text an element shows (a MutationObserver in the page),
 * so that a test sees values that were on screen only briefly; read them
 * back with `seen(page, selector)`.
 */
export async function record(page, selector) {
  await page.waitForSelector(selector, { state: 'attached' });
  await page.evaluate((sel) => {
    const store = (window.__seen ??= {});
    const el = document.querySelector(sel);
    const list = (store[sel] = [el.textContent]);
    new MutationObserver(() => list.at(-1) !== el.textContent && list.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
  }, selector);
}
export const seen = (page, selector) => page.evaluate((sel) => window.__seen?.[sel] ?? [], selector);

/**
 * Why a server feature a recipe needs is not there yet, or `null`: a
 * collection route (`GET /v1/schedules`, `POST /v1/worker/lease`) that the
 * gateway answers with 404 or 405 is not served by this build.
 */
export async function missingRoute(gateway, method, path, body, what) {
  const res = await fetch(gateway + path, {
    method,
    headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  await res.arrayBuffer();
  return res.status === 404 || res.status === 405 ? `${what} (${method} ${path} answers ${res.status})` : null;
}
