// Real processes for the integration and browser tests: a throwaway
// redis-server and PostgreSQL on free loopback ports, the relay-gateway and
// relay-worker binaries built from this repository, and nginx with a config
// the test writes. Everything is killed when the test file ends.
import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../../../..', import.meta.url)));
export const PKG = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const TARGET = process.env.CARGO_TARGET_DIR ? resolve(ROOT, process.env.CARGO_TARGET_DIR) : join(ROOT, 'target');
export const GATEWAY_BIN = process.env.RELAY_GATEWAY_BIN ?? join(TARGET, 'debug', 'relay-gateway');
export const WORKER_BIN = process.env.RELAY_WORKER_BIN ?? join(TARGET, 'debug', 'relay-worker');
export const SECRET = 'relay-client-test-secret-0123456789';
export const API_KEY = 'relay-client-test-api-key-0123';
export const ALLOW_SKIP = process.env.RELAY_TEST_ALLOW_SKIP === '1';
const isRoot = process.getuid?.() === 0;

const which = (cmd) => {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin'])) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
};

function pgBin() {
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`))
      .sort((a, b) => Number(a) - Number(b));
    if (versions.length) return `/usr/lib/postgresql/${versions.at(-1)}/bin`;
  } catch {
    /* none there */
  }
  const initdb = which('initdb');
  return initdb ? resolve(initdb, '..') : null;
}

const TOOLS = {
  redis: () => (which('redis-server') ? null : 'redis-server is not installed (apt-get install redis-server)'),
  postgres: () => (pgBin() ? null : 'PostgreSQL is not installed (apt-get install postgresql)'),
  nginx: () => (which('nginx') ? null : 'nginx is not installed (apt-get install nginx)'),
  chromium: () => (existsSync('/usr/bin/chromium') ? null : '/usr/bin/chromium is missing (apt-get install chromium)'),
  binaries: () =>
    existsSync(GATEWAY_BIN) && existsSync(WORKER_BIN)
      ? null
      : `the gateway and worker binaries are missing (${GATEWAY_BIN}): run cargo build -p relay-gateway -p relay-worker`,
};

/**
 * `describe` options for a suite that needs these tools: when one is
 * missing, the suite fails with the reason, or skips saying so when
 * RELAY_TEST_ALLOW_SKIP=1.
 */
export function requires(...names) {
  const missing = names.map((n) => TOOLS[n]()).filter(Boolean);
  if (!missing.length) return {};
  const why = missing.join('; ');
  if (ALLOW_SKIP) return { skip: `skipped (RELAY_TEST_ALLOW_SKIP=1): ${why}` };
  return { missing: why };
}

/** Throws the reason a suite cannot run (see `requires`). */
export function assertTools(req) {
  if (req.missing) throw new Error(`cannot run: ${req.missing}`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until `fn` returns a truthy value (or stops throwing), up to `ms`. */
export async function eventually(fn, ms = 20_000, what = 'condition') {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(50);
  }
}

export function freePort() {
  return new Promise((ok, err) => {
    const s = createServer();
    s.unref();
    s.on('error', err);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

/** A child process whose output goes to a log file. */
class Proc {
  constructor(name, cmd, args, opts = {}) {
    this.name = name;
    this.log = opts.log ?? join(mkdtempSync(join(tmpdir(), 'relay-js-log-')), `${name}.log`);
    const fd = openSync(this.log, 'a');
    this.child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', fd, fd], cwd: opts.cwd });
    children.add(this.child);
    this.exited = new Promise((r) => this.child.on('exit', (code, signal) => (children.delete(this.child), r({ code, signal }))));
    this.running = true;
    this.exited.then(() => (this.running = false));
  }
  signal(sig) {
    if (this.running) this.child.kill(sig);
  }
  async kill() {
    this.signal('SIGKILL');
    await this.exited;
  }
  output() {
    try {
      return readFileSync(this.log, 'utf8');
    } catch {
      return '';
    }
  }
}

function ping(port) {
  return new Promise((ok) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    s.setTimeout(500, () => (s.destroy(), ok(false)));
    s.on('error', () => ok(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) (s.destroy(), ok(buf.startsWith('+PONG')));
    });
  });
}

/** A redis-server without persistence; `restart()` brings it back empty on the same port. */
export async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'relay-js-redis-'));
  const port = await freePort();
  const r = {
    port,
    url: `redis://127.0.0.1:${port}`,
    proc: null,
    async start() {
      this.proc = new Proc('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], {
        log: join(dir, 'redis.log'),
      });
      await eventually(() => ping(port), 10_000, 'redis-server to answer PING');
    },
    async restart() {
      await this.proc.kill();
      await eventually(async () => {
        await this.start();
        return true;
      }, 10_000, 'redis-server to restart');
    },
    async stop() {
      await this.proc?.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await r.start();
  return r;
}

/** A PostgreSQL cluster with a database `relay`; as root, its programs run as `postgres`. */
export async function startPostgres() {
  const bin = pgBin();
  const dir = mkdtempSync('/tmp/relay-js-pg-');
  chmodSync(dir, 0o777);
  const port = await freePort();
  const run = (prog, args) => {
    const [cmd, all] = isRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, prog), ...args]] : [join(bin, prog), args];
    const r = spawnSync(cmd, all, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${prog} failed: ${r.stdout}${r.stderr}`);
  };
  run('initdb', ['-D', join(dir, 'data'), '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  run('pg_ctl', ['-D', join(dir, 'data'), '-l', join(dir, 'pg.log'), '-o', opts, '-w', '-t', '30', 'start']);
  const c = spawnSync(join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'relay'], { encoding: 'utf8' });
  if (c.status !== 0) throw new Error(`createdb failed: ${c.stderr}`);
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/relay`,
    async stop() {
      try {
        run('pg_ctl', ['-D', join(dir, 'data'), '-m', 'immediate', '-w', 'stop']);
      } catch {
        /* already down */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The environment of a child: this one's, without any RELAY_ variable, plus `env`. */
function childEnv(env) {
  const out = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RELAY_')) out[k] = v;
  return { ...out, ...env };
}

async function healthy(proc, url, ms = 20_000) {
  await eventually(async () => {
    if (!proc.running) throw new Error(`${proc.name} exited: ${proc.output().slice(-2000)}`);
    const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return r.status === 200;
  }, ms, `${url} to answer 200`);
}

/** A relay-gateway (JWT auth with SECRET, API key API_KEY); `restart()` on the same port. */
export async function startGateway({ redis, pg, env = {} }) {
  const port = await freePort();
  const gw = {
    port,
    url: `http://127.0.0.1:${port}`,
    proc: null,
    async start() {
      this.proc = new Proc(`gateway-${port}`, GATEWAY_BIN, [], {
        env: childEnv({
          RELAY_AUTH: 'jwt',
          RELAY_JWT_SECRET: SECRET,
          RELAY_API_KEYS: API_KEY,
          RELAY_REDIS_URL: redis.url,
          RELAY_DATABASE_URL: pg?.url ?? 'postgres://postgres@127.0.0.1:1/relay',
          RELAY_LISTEN: `127.0.0.1:${port}`,
          RELAY_INSTANCE_ID: `gw-${port}`,
          RELAY_LOG: 'warn',
          RELAY_SHUTDOWN_GRACE: '3s',
          ...env,
        }),
      });
      await healthy(this.proc, `${this.url}/healthz`);
    },
    /** Open WebSocket connections on this gateway (its own metric). */
    async connections() {
      if (!this.proc.running) return 0;
      const text = await (await fetch(`${this.url}/metrics`)).text();
      const m = text.match(/^relay_gateway_connections(?:\{[^}]*\})? (\S+)$/m);
      return m ? Number(m[1]) : 0;
    },
    async kill() {
      await this.proc.kill();
    },
    async restart() {
      await this.proc.kill();
      await this.start();
    },
  };
  await gw.start();
  return gw;
}

/** A relay-worker taking the built-in kinds. */
export async function startWorker({ redis, pg, env = {} }) {
  const port = await freePort();
  const proc = new Proc(`worker-${port}`, WORKER_BIN, [], {
    env: childEnv({
      RELAY_REDIS_URL: redis.url,
      RELAY_DATABASE_URL: pg.url,
      RELAY_METRICS_LISTEN: `127.0.0.1:${port}`,
      RELAY_INSTANCE_ID: `worker-${port}`,
      RELAY_LOG: 'warn',
      RELAY_JOB_LEASE: '5s',
      ...env,
    }),
  });
  await healthy(proc, `http://127.0.0.1:${port}/healthz`);
  return { proc, kill: () => proc.kill() };
}

/**
 * nginx in front of the gateways, serving `root` (static files) at `/`.
 * `websocket: false` strips the upgrade headers, as a proxy that does not
 * know WebSocket does: the gateway then refuses `/v1/ws`, and clients must
 * fall back. `configure()` rewrites the config and reloads it.
 */
export async function startNginx({ gateways, websocket = true, root = PKG }) {
  const dir = mkdtempSync(join(tmpdir(), 'relay-js-nginx-'));
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  const write = (o) =>
    writeFileSync(
      conf,
      `${isRoot ? 'user root;' : ''}
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  types { text/html html; text/javascript js mjs; application/json json; }
  map $http_upgrade $relay_connection { default upgrade; '' ''; }
  upstream relay { ${o.gateways.map((g) => `server 127.0.0.1:${g.port} max_fails=1 fail_timeout=2s;`).join(' ')} keepalive 16; }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    proxy_request_buffering off;
    location /v1/ {
      proxy_pass http://relay;
      proxy_http_version 1.1;
      ${o.websocket ? 'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $relay_connection;' : 'proxy_set_header Upgrade ""; proxy_set_header Connection "";'}
      proxy_buffering off;
      proxy_cache off;
      proxy_connect_timeout 2s;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 2;
    }
    location / { root ${o.root}; }
  }
}
`,
    );
  let options = { gateways, websocket, root };
  write(options);
  const proc = new Proc('nginx', which('nginx'), ['-p', dir, '-c', conf], { log: join(dir, 'nginx.log') });
  await eventually(async () => {
    if (!proc.running) throw new Error(`nginx exited: ${proc.output()}${readFileSync(join(dir, 'error.log'), 'utf8')}`);
    return (await fetch(`http://127.0.0.1:${port}/package.json`).catch(() => null))?.status === 200 || root !== PKG;
  }, 10_000, 'nginx to serve');
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    /** Rewrites the config (e.g. `{ websocket: true }`) and reloads nginx. */
    async configure(change) {
      options = { ...options, ...change };
      write(options);
      proc.signal('SIGHUP');
      await sleep(500);
    },
    async stop() {
      await proc.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An HS256 JWT for `claims` (an hour long unless `exp` is given). */
export function jwt(claims, secret = SECRET) {
  const b = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b({ alg: 'HS256', typ: 'JWT' })}.${b({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** `POST /v1/publish` with the API key to the first gateway that answers. */
export async function publish(gateways, topic, type, data) {
  let last;
  for (let i = 0; i < 50; i++) {
    for (const g of gateways) {
      if (!g.proc?.running) continue;
      try {
        const r = await fetch(`${g.url}/v1/publish`, {
          method: 'POST',
          headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
          body: JSON.stringify({ topic, type, data }),
          signal: AbortSignal.timeout(5000),
        });
        if (r.ok) return (await r.json()).event_id;
        last = new Error(`publish: HTTP ${r.status} ${await r.text()}`);
      } catch (e) {
        last = e;
      }
    }
    await sleep(100);
  }
  throw last;
}

/** Stops everything started for a suite, in reverse order, whatever failed. */
export class Stack {
  items = [];
  add(x) {
    this.items.push(x);
    return x;
  }
  async stop() {
    for (const x of this.items.reverse()) {
      try {
        await (x.stop ?? x.kill ?? x.close).call(x);
      } catch {
        /* keep stopping the rest */
      }
    }
    this.items = [];
  }
}
