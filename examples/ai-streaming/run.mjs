// node examples/ai-streaming/run.mjs: the chat page and the Node worker
// over HTTP (examples/workers/node, whose kind streams generated text from
// a deterministic fake model), against a local Relay.
//
// Settings: RELAY_URL (http://127.0.0.1:8080), RELAY_API_KEY (the dev key),
// PORT (3003); AI_KIND names the kind the page submits (by default the one
// the worker asked for, read from GET /v1/status); AI_WORKER=0 starts no
// worker (run your own).
import { fileURLToPath } from 'node:url';
import { serve, settings } from '../lib/serve.mjs';
import { findKind, startWorker } from '../lib/workers.mjs';

const s = settings(3003);
const worker = process.env.AI_WORKER === '0' ? null : startWorker('node', { relayUrl: s.relayUrl, apiKey: s.apiKey });
if (worker) worker.on('exit', (code) => console.log(`ai-streaming: the Node worker exited (${code})`));
else if (process.env.AI_WORKER !== '0') console.log('ai-streaming: examples/workers/node is not there: run a worker of a streaming kind yourself and name it in AI_KIND');
const found = process.env.AI_KIND ?? (worker ? await findKind({ relayUrl: s.relayUrl, apiKey: s.apiKey, match: /answer|chat|generat|complet|llm|ai|stream|text/i }) : null);
const kind = found ?? 'ai.answer';
if (!found) console.log(`ai-streaming: no worker over HTTP has asked for a kind yet; the page submits ${kind}`);

const { url } = await serve({
  root: fileURLToPath(new URL('public', import.meta.url)),
  port: s.port,
  host: s.host,
  config: { relayUrl: s.relayUrl, kind },
});
console.log(`ai-streaming: open ${url} (kind ${kind}, Relay at ${s.relayUrl})`);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0)); // and stop the worker
