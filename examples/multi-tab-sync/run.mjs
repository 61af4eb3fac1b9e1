// node examples/multi-tab-sync/run.mjs: the pages and the backend, against
// a local Relay. Settings: RELAY_URL (http://127.0.0.1:8080), RELAY_API_KEY
// (the dev key), RELAY_JWT_SECRET (the gateway's; without it, tokens are
// signed with a development secret the gateway does not check: run
// scripts/relay-up with the same RELAY_JWT_SECRET to see it enforce
// per-user topics), PORT (3002).
import { fileURLToPath } from 'node:url';
import { serve, settings } from '../lib/serve.mjs';
import { createBackend } from './backend.mjs';

const s = settings(3002);
const secret = s.secret ?? 'development-only-secret-not-checked-by-relay';
const { url } = await serve({
  root: fileURLToPath(new URL('public', import.meta.url)),
  port: s.port,
  host: s.host,
  config: { relayUrl: s.relayUrl },
  api: createBackend({ relayUrl: s.relayUrl, apiKey: s.apiKey, secret }),
});
console.log(`multi-tab-sync: open ${url}/?user=alice in two tabs and ${url}/?user=bob in a third (Relay at ${s.relayUrl})`);
