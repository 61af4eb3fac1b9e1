// node examples/ticket-pipeline/run.mjs: the admin board, the ticket page and
// the Python worker over HTTP (examples/workers/python, which runs each
// ticket through the stages prepare, analyse, implement, test, report),
// against a local Relay.
//
// Settings: RELAY_URL (http://127.0.0.1:8080), RELAY_API_KEY (the dev key),
// PORT (3005); TICKET_KIND names the kind the board submits (by default the
// one the worker asked for, read from GET /v1/status); TICKET_WORKER=0
// starts no worker (run your own).
import { fileURLToPath } from 'node:url';
import { serve, settings } from '../lib/serve.mjs';
import { findKind, startWorker } from '../lib/workers.mjs';

const s = settings(3005);
const worker = process.env.TICKET_WORKER === '0' ? null : startWorker('python', { relayUrl: s.relayUrl, apiKey: s.apiKey });
if (worker) worker.on('exit', (code) => console.log(`ticket-pipeline: the Python worker exited (${code})`));
else if (process.env.TICKET_WORKER !== '0') console.log('ticket-pipeline: examples/workers/python is not there: run a worker of the ticket kind yourself and name it in TICKET_KIND');
const found = process.env.TICKET_KIND ?? (worker ? await findKind({ relayUrl: s.relayUrl, apiKey: s.apiKey, match: /ticket|pipeline/i }) : null);
const kind = found ?? 'ticket.process';
if (!found) console.log(`ticket-pipeline: no worker over HTTP has asked for a kind yet; the board submits ${kind}`);

const { url } = await serve({
  root: fileURLToPath(new URL('public', import.meta.url)),
  port: s.port,
  host: s.host,
  config: { relayUrl: s.relayUrl, kind },
});
console.log(`ticket-pipeline: open ${url} (the board; kind ${kind}, Relay at ${s.relayUrl})`);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0)); // and stop the worker
