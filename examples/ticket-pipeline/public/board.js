// The admin board: every ticket and its state, live from the `jobs` topic
// (the state events of all jobs; admins only when auth is on). Opening the
// board lists the latest tickets once (GET /v1/jobs?kind=…), then follows
// the events; a ticket's own page shows its stages and logs.
import { RelayClient } from '/relay-client.js';

const config = await (await fetch('/config.json')).json();
const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? undefined; // an admin token when auth is on
const client = new RelayClient({ url: config.relayUrl, token });
const $ = (id) => document.getElementById(id);
const ENDED = ['completed', 'failed', 'cancelled'];
const STATES = { 'job.queued': 'queued', 'job.started': 'running', 'job.completed': 'completed', 'job.failed': 'failed', 'job.cancelled': 'cancelled' };
const MAX_ROWS = 200;

/** job id -> {id, title, state, created, updated} */
const tickets = new Map();
let held = []; // events that arrive while the list loads

client.on('state', ({ state, transport }) => {
  $('conn').dataset.state = state;
  $('conn').textContent = transport ? `${state} · ${transport}` : state;
});
// Subscribe first, then list: nothing that happens in between is missed.
client.subscribe('jobs', {
  onEvent: (e) => (held ? held.push(e) : apply(e)),
  onReset: () => void load(), // events were missed: list again
  onError: (e) => ($('error').textContent = `${e.code}: the board needs an admin token (${e.message})`),
});
await load();

async function load() {
  held ??= [];
  try {
    const { jobs } = await client.jobs.list({ kind: config.kind, limit: 50 });
    for (const r of jobs) update(r.id, { title: r.payload?.title ?? '', state: r.state, created: Date.parse(r.created_at) });
  } catch (e) {
    $('error').textContent = `${e.code}: ${e.message}`;
  } finally {
    const later = held;
    held = null;
    later.forEach(apply);
    render();
  }
}

/** One state event of any job: the tickets' ones update their row. */
function apply(e) {
  const d = e.data ?? {};
  if ((d.kind ?? d.job?.kind) !== config.kind) return;
  const id = d.job_id ?? d.job?.id; // every job event names its job (job.queued also carries the record)
  const state = STATES[e.type];
  if (!id || !state) return;
  const known = tickets.get(id);
  if (known && ENDED.includes(known.state)) return; // an ended ticket stays ended (a late event changes nothing)
  update(id, { state, updated: e.ts, ...(d.job && { title: d.job.payload?.title, created: Date.parse(d.job.created_at) }) });
  if (tickets.get(id).title === undefined) {
    tickets.get(id).title = null; // read once: a ticket from before the list
    client.jobs.get(id).then((r) => (update(id, { title: r.payload?.title ?? '', created: Date.parse(r.created_at) }), render()), () => {});
  }
  render();
}

function update(id, fields) {
  const t = tickets.get(id) ?? { id, title: undefined, state: 'queued', created: Date.now(), updated: Date.now() };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && !Number.isNaN(v)) t[k] = v;
  tickets.set(id, t);
  if (tickets.size > MAX_ROWS) {
    const oldest = [...tickets.values()].filter((x) => ENDED.includes(x.state)).sort((a, b) => a.created - b.created)[0];
    if (oldest) tickets.delete(oldest.id);
  }
}

function render() {
  const rows = [...tickets.values()].sort((a, b) => b.created - a.created);
  $('tickets').replaceChildren(
    ...rows.map((t) => {
      const tr = document.createElement('tr');
      tr.dataset.id = t.id;
      tr.dataset.state = t.state;
      const link = Object.assign(document.createElement('a'), { href: `/ticket.html#id=${encodeURIComponent(t.id)}${token ? `&token=${token}` : ''}`, textContent: t.id.slice(0, 8) });
      const cancel = Object.assign(document.createElement('button'), { textContent: 'Cancel', hidden: ENDED.includes(t.state), className: 'cancel' });
      cancel.onclick = () => client.jobs.cancel(t.id, 'cancelled from the board').catch((e) => ($('error').textContent = `${e.code}: ${e.message}`));
      const cells = [link, t.title ?? '…', Object.assign(document.createElement('span'), { className: 'state', textContent: t.state }), new Date(t.updated).toLocaleTimeString('en-GB'), cancel];
      for (const c of cells) tr.insertCell().append(c);
      return tr;
    }),
  );
}

$('new').addEventListener('submit', async (e) => {
  e.preventDefault();
  const title = $('title').value.trim();
  try {
    // The row appears when the job.queued event comes back, as for tickets started elsewhere.
    await client.jobs.submit(config.kind, { ticket_id: `T-${Date.now().toString(36)}`, title, description: $('description').value.trim() });
    $('title').value = $('description').value = '';
    $('error').textContent = '';
  } catch (err) {
    $('error').textContent = `${err.code}: ${err.message}`;
  }
});
