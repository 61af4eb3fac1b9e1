// The console's test bench: real processes from the client's test harness
// (redis-server, PostgreSQL, relay-gateway and relay-worker from
// target/debug), headless Chromium (Debian's), and screenshots saved under
// console/test-output/ for a person to look at.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { API_KEY, SECRET, Stack, assertTools, eventually, jwt, requires, sleep, startGateway, startPostgres, startRedis, startWorker } from '../../clients/js/test/helpers/env.mjs';

export { API_KEY, SECRET, Stack, assertTools, eventually, jwt, requires, sleep, startGateway, startPostgres, startRedis, startWorker };

export const CONSOLE = fileURLToPath(new URL('..', import.meta.url));
export const OUTPUT = join(CONSOLE, 'test-output');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** The tools every console suite needs. */
export const req = requires('redis', 'postgres', 'binaries', 'chromium');

/** Stacks still running: stopped if the test process is told to end (PostgreSQL runs detached). */
const running = new Set();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, async () => {
    await Promise.allSettled([...running].map((s) => s.stop()));
    process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
  });
}

/**
 * The gateway embeds console/dist when it is compiled: a binary older than
 * the build would test an older console.
 */
async function sameBuild(gateway) {
  const served = await (await fetch(`${gateway.url}/console/`)).text();
  const built = readFileSync(join(CONSOLE, 'dist', 'index.html'), 'utf8');
  if (served !== built) throw new Error('the gateway binary serves another console build than console/dist: run cargo build -p relay-gateway');
}

/**
 * Redis, PostgreSQL, a worker and a gateway (`RELAY_AUTH=jwt` unless
 * `auth: 'off'`) serving the console at /console; `stop()` ends them all.
 */
export async function startRelay({ auth = 'jwt', workerEnv = {}, gatewayEnv = {} } = {}) {
  assertTools(req);
  const stack = new Stack();
  running.add(stack);
  try {
    const redis = stack.add(await startRedis());
    const pg = stack.add(await startPostgres());
    const env = auth === 'off' ? { RELAY_AUTH: 'off', ...gatewayEnv } : gatewayEnv;
    const gateway = stack.add(await startGateway({ redis, pg, env }));
    stack.add(await startWorker({ redis, pg, env: { RELAY_JOB_LEASE: '5s', ...workerEnv } }));
    await sameBuild(gateway);
    return { redis, pg, gateway, url: gateway.url, console: `${gateway.url}/console/`, stack, stop: () => (running.delete(stack), stack.stop()) };
  } catch (e) {
    running.delete(stack);
    await stack.stop();
    throw e;
  }
}

/** Headless Chromium with a fresh profile; `page()` opens a tab that records its errors. */
export async function startBrowser() {
  const profile = mkdtempSync(join(tmpdir(), 'relay-console-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 860 },
    acceptDownloads: true,
  });
  return {
    context,
    /** A new tab; `errors` collects page errors, console errors and CSP violations. */
    async page() {
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        // The console finds the auth mode by asking for the job list without a token.
        const url = m.location().url;
        const probe = /Failed to load resource: .* 401/.test(m.text()) && /\/v1\/jobs\?limit=1$/.test(url);
        // A server without job transcripts (before v1.1): the client falls back to the record.
        const noTranscript = /Failed to load resource: .* 404/.test(m.text()) && /\/v1\/jobs\/[^/]+\/events\?/.test(url);
        if (m.type() === 'error' && !probe && !noTranscript) errors.push(`console: ${m.text()} (${url})`);
      });
      page.errors = errors;
      return page;
    },
    async stop() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Saves a full-page screenshot as test-output/<name>.png. */
export async function shot(page, name) {
  mkdirSync(OUTPUT, { recursive: true });
  await page.screenshot({ path: join(OUTPUT, `${name}.png`), fullPage: true });
}

/** Opens the console signed in with `token` (and `apiKey`), through its login form. */
export async function signIn(page, relay, { token, apiKey } = {}) {
  await page.goto(relay.console);
  await page.waitForSelector('form textarea[name=token]');
  if (token) await page.fill('textarea[name=token]', token);
  if (apiKey) await page.fill('input[name=api-key]', apiKey);
  await page.click('form button[type=submit]');
  await page.waitForSelector('header.top nav');
}

/** An API call to the gateway as `auth` (`{token}` or `{apiKey}`). */
export async function api(relay, method, path, { token, apiKey, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (apiKey) headers['x-api-key'] = apiKey;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(relay.url + path, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json, text, headers: res.headers };
}

/** Waits until the job reaches one of `states`; returns its record. */
export async function waitJob(relay, id, states, auth = { token: tokens.admin() }, ms = 30_000) {
  return eventually(async () => {
    const r = await api(relay, 'GET', `/v1/jobs/${id}`, auth);
    return states.includes(r.json?.state) && r.json;
  }, ms, `job ${id} to be ${states.join(' or ')}`);
}

/** Tokens of an admin and of users, signed with the test gateway's secret. */
export const tokens = {
  admin: () => jwt({ sub: 'ada', admin: true }),
  user: (sub, claims = {}) => jwt({ sub, ...claims }),
};

