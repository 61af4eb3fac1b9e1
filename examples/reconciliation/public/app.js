// The reconciliation page: upload two CSV files, start a `reconcile` job,
// follow its progress live, show the result and the full lists to download.
import { RelayClient } from '/relay-client.js';

const config = await (await fetch('/config.json')).json();
const hash = new URLSearchParams(location.hash.slice(1));
const token = hash.get('token') ?? undefined; // none needed with RELAY_AUTH=off
const client = new RelayClient({ url: config.relayUrl, token });
const $ = (id) => document.getElementById(id);

$('form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('start').disabled = true;
  try {
    const left = await upload($('left').files[0], $('left-upload'));
    const right = await upload($('right').files[0], $('right-upload'));
    const compare = $('compare').value.split(',').map((p) => p.split('=').map((c) => c.trim())).filter((p) => p.length === 2 && p[0] && p[1]);
    const { id } = await client.jobs.submit('reconcile', {
      left: { upload_id: left.upload_id },
      right: { upload_id: right.upload_id },
      left_key: $('left-key').value.trim(),
      right_key: $('right-key').value.trim(),
      compare,
    });
    hash.set('job', id);
    history.replaceState(null, '', '#' + hash); // a reload follows the same job
    follow(id);
  } catch (err) {
    $('error').textContent = `${err.code ?? 'ERROR'}: ${err.message}`;
    $('job').hidden = false;
  } finally {
    $('start').disabled = false;
  }
});

/** Uploads one file, showing its progress; resolves with `{upload_id, bytes, sha256}`. */
function upload(file, bar) {
  bar.hidden = false;
  return client.jobs.upload(file, { onProgress: (sent, total) => (bar.value = (100 * sent) / (total || 1)) });
}

let watch;
function follow(id) {
  watch?.close();
  watch = client.jobs.watch(id); // job:{id} from its first event; whole again after a reload
  $('job').hidden = false;
  $('job-id').textContent = id;
  $('cancel').onclick = () => client.jobs.cancel(id, 'cancelled from the page').catch(() => {}); // 409: it had ended
  watch.onChange(render);
  render(watch.view);
}

function render(v) {
  $('state').textContent = v.state ?? '';
  $('state').dataset.state = v.state ?? '';
  const p = v.progress;
  const percent = Math.floor(p?.percent ?? (v.state === 'completed' ? 100 : 0));
  $('bar').value = percent;
  $('percent').textContent = `${percent} %`;
  $('step').textContent = p?.step ? `step: ${p.step}` : '';
  $('rows').textContent = p?.processed != null ? `· ${p.processed.toLocaleString('en')} rows` : '';
  $('eta').textContent = p?.eta_ms != null && v.state === 'running' ? `· about ${Math.ceil(p.eta_ms / 1000)} s left` : '';
  $('cancel').hidden = v.done || v.state === 'completed' || v.state === 'failed' || v.state === 'cancelled';
  $('error').textContent = v.state === 'failed' || v.state === 'cancelled' ? v.error ?? '' : '';
  $('logs').hidden = !v.logs.length;
  $('logs').textContent = v.logs.map((l) => `[${l.level}] ${l.message}`).join('\n');
  if (v.state === 'completed' && v.result) showResult(v.result, v.record?.artifacts ?? []);
}

function showResult(r, artifacts) {
  $('result').hidden = false;
  for (const k of ['total_left', 'total_right', 'matches', 'mismatches', 'left_only', 'right_only']) $(k).textContent = String(r[k] ?? '');
  $('dup_left').textContent = String(r.duplicate_keys?.left ?? 0);
  $('dup_right').textContent = String(r.duplicate_keys?.right ?? 0);
  $('samples').textContent = JSON.stringify(r.samples ?? {}, null, 2);
  // The full lists, when the server writes them (artifacts): one link per file.
  $('artifacts').replaceChildren(
    ...artifacts.map((a) => {
      const link = document.createElement('a');
      link.href = `${config.relayUrl}/v1/jobs/${encodeURIComponent(watch.id)}/artifacts/${encodeURIComponent(a.name)}`;
      link.textContent = `${a.name} (${a.bytes.toLocaleString('en')} bytes)`;
      link.dataset.artifact = a.name;
      link.onclick = (e) => (e.preventDefault(), download(link.href, a.name));
      const li = document.createElement('li');
      li.append(link);
      return li;
    }),
  );
}

/** Downloads an artifact with the page's token (a plain link cannot carry it). */
async function download(url, name) {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!res.ok) return void ($('error').textContent = `download failed: HTTP ${res.status}`);
  const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(await res.blob()), download: name });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

if (hash.get('job')) follow(hash.get('job'));
