// Submit a job: a kind (the built-in ones, and those the cluster's workers
// and queues name), its JSON payload prefilled from what the kind takes,
// the submit options, and for `reconcile` the two CSV files, uploaded with
// progress.
import { useEffect, useState } from 'preact/hooks';
import type { SubmitOptions } from 'relay-client';
import { BUILT_IN, template } from '../kinds.js';
import { go } from '../router.js';
import { ErrorBox, JsonEditor, Section, bytes, jsonError, message, useSession } from '../ui.js';

interface Status {
  workers?: { kinds?: string[] }[];
  queues?: { kind: string }[];
}

export function SubmitPage({ kind: wanted }: { kind: string | null }) {
  const s = useSession();
  const [kinds, setKinds] = useState<string[]>(Object.keys(BUILT_IN));
  const [kind, setKind] = useState(wanted || 'sleep');
  const [payload, setPayload] = useState(() => template(wanted || 'sleep'));
  const [opts, setOpts] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!s.server) return;
    s.request<Status>('GET', '/v1/status', undefined, true).then(
      (st) => {
        const found = [...(st.queues ?? []).map((q) => q.kind), ...(st.workers ?? []).flatMap((w) => w.kinds ?? [])];
        setKinds((old) => [...new Set([...old, ...found])].sort());
      },
      () => undefined,
    );
  }, [s]);

  const choose = (k: string) => {
    setKind(k);
    setPayload(template(k));
    setError(null);
  };

  const setSide = (side: 'left' | 'right', uploadId: string) => {
    setPayload((text) => {
      let obj: any;
      try {
        obj = JSON.parse(text);
      } catch {
        obj = JSON.parse(template('reconcile'));
      }
      if (!obj || typeof obj !== 'object' || Array.isArray(obj)) obj = {};
      obj[side] = { upload_id: uploadId };
      return JSON.stringify(obj, null, 2);
    });
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!/^[a-z0-9_.-]{1,64}$/.test(kind)) return setError('A kind is 1 to 64 of a-z, 0-9, _ . -');
    const bad = jsonError(payload);
    if (bad) return setError(`The payload is ${bad}`);
    const o: SubmitOptions = {};
    for (const k of ['priority', 'max_attempts', 'timeout_ms', 'delay_ms'] as const) {
      const v = opts[k]?.trim();
      if (!v) continue;
      const n = Number(v);
      if (!Number.isInteger(n)) return setError(`${k} must be a whole number`);
      o[k] = n;
    }
    if (opts.idempotency_key?.trim()) o.idempotency_key = opts.idempotency_key.trim();
    if (opts.owner?.trim()) o.owner = opts.owner.trim();
    setBusy(true);
    setError(null);
    try {
      const r = await s.client.jobs.submit(kind, JSON.parse(payload), o);
      go(['jobs', r.id]);
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  };

  const opt = (k: string, label: string, placeholder: string, type: 'number' | 'text' = 'number') => (
    <label class="field small">
      <span>{label}</span>
      <input name={k} inputMode={type === 'number' ? 'numeric' : 'text'} placeholder={placeholder} value={opts[k] ?? ''} onInput={(e) => setOpts({ ...opts, [k]: (e.target as HTMLInputElement).value })} />
    </label>
  );

  return (
    <Section title="Submit a job">
      <form class="submit" onSubmit={submit}>
        <div class="kinds" role="tablist">
          {kinds.map((k) => (
            <button key={k} type="button" role="tab" aria-selected={k === kind} class={k === kind ? 'tab active' : 'tab'} onClick={() => choose(k)}>
              {k}
            </button>
          ))}
          <input
            name="kind"
            class="kind-input"
            aria-label="kind"
            value={kind}
            onInput={(e) => {
              const k = (e.target as HTMLInputElement).value.trim();
              setKind(k);
              if (BUILT_IN[k]) setPayload(template(k));
            }}
          />
        </div>
        <p class="muted">{BUILT_IN[kind]?.about ?? 'A kind of your own: its payload is whatever its handler takes.'}</p>
        {kind === 'reconcile' && (
          <div class="uploads">
            <Upload side="left" onUploaded={(id) => setSide('left', id)} />
            <Upload side="right" onUploaded={(id) => setSide('right', id)} />
          </div>
        )}
        <JsonEditor label="payload" value={payload} onInput={setPayload} rows={kind === 'reconcile' ? 14 : 8} />
        <details class="options">
          <summary>Options</summary>
          <div class="row">
            {opt('priority', 'priority', '0 (-100..100)')}
            {opt('max_attempts', 'max attempts', '3')}
            {opt('timeout_ms', 'timeout (ms)', '600000')}
            {opt('delay_ms', 'delay (ms)', '0')}
            {opt('idempotency_key', 'idempotency key', 'none', 'text')}
            {s.me.admin && opt('owner', 'owner (a user sub)', s.me.sub, 'text')}
          </div>
        </details>
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={busy || !!jsonError(payload)}>
          {busy ? 'Submitting…' : `Submit ${kind}`}
        </button>
      </form>
    </Section>
  );
}

/** One input file of a `reconcile`: uploaded as soon as it is chosen, with progress. */
function Upload({ side, onUploaded }: { side: 'left' | 'right'; onUploaded: (id: string) => void }) {
  const s = useSession();
  const [sent, setSent] = useState<{ sent: number; total: number } | null>(null);
  const [done, setDone] = useState<{ id: string; bytes: number; name: string } | null>(null);
  const [columns, setColumns] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const pick = async (e: Event) => {
    const file = (e.target as HTMLInputElement).files?.[0];
    if (!file) return;
    setDone(null);
    setError(null);
    setSent({ sent: 0, total: file.size });
    file
      .slice(0, 4096)
      .text()
      .then((t) => setColumns(t.replace(/^\uFEFF/, '').split(/\r?\n/)[0] ?? null), () => setColumns(null));
    try {
      const r = await s.client.jobs.upload(file, { onProgress: (n, total) => setSent({ sent: n, total }) });
      setDone({ id: r.upload_id, bytes: r.bytes, name: file.name });
      onUploaded(r.upload_id);
    } catch (err) {
      setError(message(err));
    }
  };
  const pct = sent && sent.total ? (100 * sent.sent) / sent.total : 0;
  return (
    <div class={`upload upload-${side}`}>
      <label class="field">
        <span>{side} file (CSV)</span>
        <input type="file" name={`${side}-file`} accept=".csv,text/csv,text/plain" onChange={pick} />
      </label>
      {sent && !done && !error && (
        <div class="progress-line">
          <progress max={100} value={pct} aria-label={`${side} upload`} />
          <small>
            {bytes(sent.sent)} of {bytes(sent.total)}
          </small>
        </div>
      )}
      {done && (
        <small class="ok uploaded">
          ✓ {done.name}: {bytes(done.bytes)}, upload <span class="mono">{done.id}</span>
        </small>
      )}
      {columns && <small class="muted columns">columns: {columns}</small>}
      <ErrorBox error={error} />
    </div>
  );
}
