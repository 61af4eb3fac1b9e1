// node examples/reconciliation/run.mjs: serves the reconciliation page
// against a local Relay (scripts/relay-up). Settings: RELAY_URL
// (http://127.0.0.1:8080), PORT (3001).
import { fileURLToPath } from 'node:url';
import { serve, settings } from '../lib/serve.mjs';

const s = settings(3001);
const { url } = await serve({
  root: fileURLToPath(new URL('public', import.meta.url)),
  port: s.port,
  host: s.host,
  config: { relayUrl: s.relayUrl },
});
console.log(`reconciliation: open ${url} (Relay at ${s.relayUrl}; sample files in examples/reconciliation/samples/)`);
