// The console's test bench: real processes from the client's test harness
// (redis-server, PostgreSQL, relay-gateway and relay-worker from
// target/debug), headless Chromium (Debian's), and screenshots saved under
// console/test-output/ for a person to look at.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
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
    const front = stack.add(await serveConsole(gateway));
    return { redis, pg, gateway, url: front.url, console: `${front.url}/console/`, stack, stop: () => (running.delete(stack), stack.stop()) };
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

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The built console (dist/) at /console/, with the headers the gateway
 * sends, and everything else passed through to the gateway (WebSocket
 * upgrades too), so the page and the API share one origin.
 */
export async function serveConsole(gateway, dir = join(CONSOLE, 'dist')) {
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/console') {
      res.writeHead(308, { location: '/console/' });
      return res.end();
    }
    if (path.startsWith('/console/')) {
      const rel = normalize(path.slice('/console/'.length) || 'index.html');
      const file = join(dir, rel);
      if (rel.startsWith('..') || !existsSync(file)) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end('{"error":{"code":"NOT_FOUND","message":"no such file"}}');
      }
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'cache-control': rel.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
        'content-security-policy': CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      });
      return res.end(readFileSync(file));
    }
    const up = request({ host: '127.0.0.1', port: gateway.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  const upgraded = new Set();
  server.on('upgrade', (req, socket, head) => {
    upgraded.add(socket);
    socket.on('close', () => upgraded.delete(socket));
    const up = connect(gateway.port, '127.0.0.1', () => {
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(raw + '\r\n');
      up.write(head);
      socket.pipe(up).pipe(socket);
    });
    const end = () => (socket.destroy(), up.destroy());
    up.on('error', end);
    socket.on('error', end);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
        for (const s of upgraded) s.destroy();
      }),
  };
}
