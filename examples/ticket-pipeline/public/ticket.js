// One ticket's page: its stages (prepare, analyse, implement, test, report),
// live progress, the logs as they arrive, and the result, from
// `client.jobs.watch` on the ticket's job topic (the whole story again after
// a reload or a reconnect).
import { RelayClient } from '/relay-client.js';

const config = await (await fetch('/config.json')).json();
const hash = new URLSearchParams(location.hash.slice(1));
const token = hash.get('token') ?? undefined;
const client = new RelayClient({ url: config.relayUrl, token });
const $ = (id) => document.getElementById(id);
const STAGES = ['prepare', 'analyse', 'implement', 'test', 'report'];
if (token) $('back').href = `/#token=${token}`;

client.on('state', ({ state, transport }) => {
  $('conn').dataset.state = state;
  $('conn').textContent = transport ? `${state} · ${transport}` : state;
});

$('stages').replaceChildren(...STAGES.map((s) => Object.assign(document.createElement('li'), { textContent: s, id: `stage-${s}` })));
let reached = -1; // the furthest stage seen

const watch = client.jobs.watch(hash.get('id'));
watch.onChange(render);
render(watch.view);
watch.done.catch((e) => ($('error').textContent = `${e.code}: ${e.message}`));

function render(v) {
  const title = v.record?.payload?.title;
  if (title) $('title').textContent = document.title = title;
  $('state').textContent = v.state ?? '';
  $('state').dataset.state = v.state ?? '';
  $('attempts').textContent = String(v.attempts);
  const p = v.progress;
  const percent = Math.floor(p?.percent ?? (v.state === 'completed' ? 100 : 0));
  $('bar').value = percent;
  $('percent').textContent = `${percent} %`;
  $('step').textContent = p?.step ?? '';
  $('message').textContent = p?.message ?? '';
  reached = Math.max(reached, STAGES.indexOf(p?.step));
  STAGES.forEach((s, i) => {
    const done = i < reached || (v.state === 'completed' && i <= reached);
    $(`stage-${s}`).className = done ? 'done' : i === reached ? 'current' : '';
  });
  $('logs').replaceChildren(
    ...v.logs.map((l) => {
      const li = document.createElement('li');
      li.dataset.level = l.level;
      li.textContent = `${new Date(l.ts).toLocaleTimeString('en-GB')} [${l.level}] ${l.message}`;
      return li;
    }),
  );
  $('error').textContent = v.state === 'failed' || v.state === 'cancelled' ? v.error ?? '' : '';
  $('result-box').hidden = v.state !== 'completed';
  if (v.state === 'completed') $('result').textContent = JSON.stringify(v.result, null, 2);
}
