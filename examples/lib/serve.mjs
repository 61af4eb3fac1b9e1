// A tiny static server for the recipe pages (Node's http module, no
// dependency): the recipe's public/ folder, the client bundle at
// /relay-client.js, the page's settings at /config.json, and optional API
// routes of the recipe's own backend.
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { ensureBundle } from './bundle.mjs';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.csv': 'text/csv; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Sends `body` as JSON with `status`. */
export function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** The JSON body of a request (at most 64 KiB), or `undefined` when it is not JSON. */
export async function readJson(req) {
  let size = 0;
  const parts = [];
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) return undefined;
    parts.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    return undefined;
  }
}

function file(res, path) {
  let st;
  try {
    st = statSync(path);
  } catch {
    return false;
  }
  if (!st.isFile()) return false;
  res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream', 'content-length': st.size, 'cache-control': 'no-cache' });
  createReadStream(path).pipe(res);
  return true;
}

/**
 * Serves `root` on `host:port` (port 0: any free one). `config` is what
 * the page reads from /config.json; `api(req, res, url)` handles a request
 * first and returns true when it did.
 */
export function serve({ root, port = 0, host = '127.0.0.1', config = {}, api }) {
  const bundle = ensureBundle();
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (api && (await api(req, res, url))) return;
      if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: { code: 'METHOD', message: 'GET only' } });
      if (url.pathname === '/config.json') return json(res, 200, config);
      if (url.pathname === '/relay-client.js' && file(res, bundle)) return;
      const path = normalize(join(root, decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname)));
      if ((path === root || path.startsWith(root + sep)) && file(res, path)) return;
      json(res, 404, { error: { code: 'NOT_FOUND', message: `no ${url.pathname}` } });
    } catch (e) {
      if (!res.headersSent) json(res, 500, { error: { code: 'SERVER_ERROR', message: String(e?.message ?? e) } });
      else res.destroy();
    }
  });
  return new Promise((ok, err) => {
    server.once('error', err);
    server.listen(port, host, () => {
      const { port: p } = server.address();
      ok({ url: `http://${host}:${p}`, port: p, server, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

/** Settings every run command reads from its environment. */
export function settings(defaultPort) {
  return {
    relayUrl: (process.env.RELAY_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, ''),
    apiKey: process.env.RELAY_API_KEY ?? 'dev-api-key-change-me',
    secret: process.env.RELAY_JWT_SECRET || undefined,
    port: Number(process.env.PORT ?? defaultPort),
    host: process.env.HOST ?? '127.0.0.1',
  };
}
