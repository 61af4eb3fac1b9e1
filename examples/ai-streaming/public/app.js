// A chat whose answers are jobs: each question is submitted as a job of the
// streaming kind (run by a worker over HTTP), and the answer is the job's
// `job.chunk` texts, shown as they come. Stop cancels the job. The
// conversation is kept in sessionStorage with each answer's job id, so a
// reload in the middle of an answer shows it whole and goes on streaming.
import { RelayClient } from '/relay-client.js';

const config = await (await fetch('/config.json')).json();
const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? undefined; // none with RELAY_AUTH=off
const client = new RelayClient({ url: config.relayUrl, token });
const $ = (id) => document.getElementById(id);
const ENDED = ['completed', 'failed', 'cancelled'];
const KEY = 'ai-streaming:conversation';

/** [{role: 'user', text} | {role: 'assistant', job, text, state, error}] */
const conversation = JSON.parse(sessionStorage.getItem(KEY) ?? '[]');
const save = () => sessionStorage.setItem(KEY, JSON.stringify(conversation));

client.on('state', ({ state, transport }) => {
  $('conn').dataset.state = state;
  $('conn').textContent = transport ? `${state} · ${transport}` : state;
});

$('ask').addEventListener('submit', async (e) => {
  e.preventDefault();
  const prompt = $('prompt').value.trim();
  if (!prompt) return;
  $('prompt').value = '';
  conversation.push({ role: 'user', text: prompt });
  save();
  show(conversation.at(-1));
  try {
    const { id } = await client.jobs.submit(config.kind, { prompt });
    const answer = { role: 'assistant', job: id, text: '', state: 'queued', error: null };
    conversation.push(answer);
    save();
    follow(answer);
  } catch (err) {
    const failed = { role: 'assistant', job: null, text: '', state: 'failed', error: `${err.code}: ${err.message}` };
    conversation.push(failed);
    save();
    show(failed);
  }
});

/** Follows one answer's job until it ends; the watch gives the whole text so far, then each chunk. */
function follow(answer) {
  show(answer);
  const watch = client.jobs.watch(answer.job);
  $('send').disabled = true;
  $('stop').hidden = false;
  $('stop').onclick = () => client.jobs.cancel(answer.job, 'stopped by the user').catch(() => {}); // 409: it had ended
  watch.onChange((v) => {
    answer.text = v.text;
    answer.state = v.state ?? answer.state;
    answer.error = v.state === 'failed' ? v.error : null;
    save();
    show(answer);
  });
  watch.done.finally(() => {
    watch.close();
    $('send').disabled = false;
    $('stop').hidden = true;
  });
}

/** Draws (or redraws) one message. */
function show(m) {
  const i = conversation.indexOf(m);
  let el = $('messages').children[i];
  if (!el) {
    el = document.createElement('div');
    el.className = `msg ${m.role}`;
    el.append(Object.assign(document.createElement('span'), { className: 'text' }), Object.assign(document.createElement('span'), { className: 'badge' }));
    $('messages').append(el);
  }
  el.querySelector('.text').textContent = m.text;
  if (m.role === 'assistant') {
    el.dataset.state = m.state;
    el.dataset.job = m.job ?? '';
    el.querySelector('.badge').textContent = { cancelled: '[stopped]', failed: `[failed: ${m.error}]` }[m.state] ?? '';
  }
}

for (const m of conversation) {
  if (m.role === 'assistant' && m.job && !ENDED.includes(m.state)) follow(m);
  else show(m);
}
