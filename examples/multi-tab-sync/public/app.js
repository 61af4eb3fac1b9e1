// One user's list, kept in step across all their tabs. Changes go to the
// application's backend (PUT/DELETE /api/items/...), which publishes each
// one to Relay on `user:{sub}`; every tab of that user applies the events
// it receives, over WebSocket, SSE or long-polling, and resumes after a
// disconnection from where it was.
import { RelayClient } from '/relay-client.js';

const config = await (await fetch('/config.json')).json();
// #token=<jwt> (a token from your own login) and #transport=websocket|sse|poll
// (to force one; by default WebSocket, then SSE, then long-polling).
const hash = new URLSearchParams(location.hash.slice(1));
const token = hash.get('token') ?? (await login(new URLSearchParams(location.search).get('user') ?? 'alice'));
const sub = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub;
const client = new RelayClient({ url: config.relayUrl, token, ...(hash.get('transport') && { transports: [hash.get('transport')] }) });
const $ = (id) => document.getElementById(id);

const items = new Map();
let rev = 0; // the revision of the list shown; every event carries the next one
let held = null; // events that arrive while a fresh copy of the list is loading
const stats = { events: 0, reloads: 0, resets: 0 };

/** Replaces the list with the backend's copy; returns it (with the Relay position it matches). */
let loading = null;
const load = () => (loading ??= reload().finally(() => (loading = null)));
async function reload() {
  held = [];
  try {
    const snap = await api('GET', '/api/items');
    items.clear();
    for (const item of snap.items) items.set(item.id, item);
    rev = snap.rev;
    return snap;
  } finally {
    const later = held;
    held = null;
    later.forEach(apply);
    render();
  }
}

function apply(e) {
  const r = e.data.rev;
  if (r <= rev) return; // already in the list
  if (r !== rev + 1) {
    // A change is missing (the backend could not publish it): load the list again.
    stats.reloads++;
    void load();
    return;
  }
  rev = r;
  if (e.type === 'item.set') items.set(e.data.item.id, e.data.item);
  if (e.type === 'item.removed') items.delete(e.data.id);
}

// The list first, then its changes from the Relay event it matches: nothing
// published in between is missed, nothing is applied twice.
const first = await load();
client.subscribe(`user:${sub}`, {
  since: first.position ?? String(first.at),
  onEvent(e) {
    stats.events++;
    if (held) held.push(e);
    else apply(e);
    render();
  },
  onReset() {
    // Relay could not vouch for every event since our position: reload.
    stats.resets++;
    void load();
  },
  onError(e) {
    $('error').textContent = `subscription refused: ${e.code} ${e.message}`;
  },
});
client.on('state', ({ state, transport }) => {
  $('conn').dataset.state = state;
  $('conn').textContent = transport ? `${state} · ${transport}` : state;
});

// When the browser says the network is gone, stop at once (a socket on a
// vanished network is otherwise noticed only by the heartbeat) and resume
// when it is back: the client subscribes again from the last event it
// delivered, so nothing published meanwhile is lost.
addEventListener('offline', () => client.close());
addEventListener('online', () => client.connect());

$('add').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('text').value.trim();
  if (!text) return;
  $('text').value = '';
  change('PUT', crypto.randomUUID(), { text, done: false });
});

/** Sends a change to the backend; the list changes when its event comes back, as in every other tab. */
function change(method, id, body) {
  api(method, `/api/items/${id}`, body).then(
    () => ($('error').textContent = ''),
    (e) => ($('error').textContent = `not saved: ${e.message}`),
  );
}

function render() {
  $('who').textContent = sub;
  $('stats').textContent = `events ${stats.events} · reloads ${stats.reloads} · resets ${stats.resets}`;
  $('items').replaceChildren(
    ...[...items.values()].map((item) => {
      const li = document.createElement('li');
      li.dataset.id = item.id;
      li.className = item.done ? 'done' : '';
      const box = Object.assign(document.createElement('input'), { type: 'checkbox', checked: item.done });
      box.onchange = () => change('PUT', item.id, { text: item.text, done: box.checked });
      const text = Object.assign(document.createElement('span'), { textContent: item.text });
      const remove = Object.assign(document.createElement('button'), { textContent: '×', title: 'remove' });
      remove.onclick = () => change('DELETE', item.id);
      li.append(box, text, remove);
      return li;
    }),
  );
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body && { 'content-type': 'application/json' }) },
    ...(body && { body: JSON.stringify(body) }),
  });
  const data = await res.json();
  if (!res.ok) throw new Error(data.error?.message ?? `HTTP ${res.status}`);
  return data;
}

/** The development login of the recipe's backend (a real app has its own). */
async function login(user) {
  const res = await fetch(`/api/login?user=${encodeURIComponent(user)}`);
  return (await res.json()).token;
}
