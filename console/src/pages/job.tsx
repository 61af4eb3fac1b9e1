// One job, live: progress bar and step, ETA, logs as they arrive, streamed
// output, the result as collapsible JSON, errors and attempts, cancel, and
// the artifacts it produced as downloads.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { JobArtifact, JobProgress, JobRecord, JobView, RelayEvent, Subscription } from 'relay-client';
import { href } from '../router.js';
import type { Session } from '../session.js';
import { ErrorBox, Json, Section, StateBadge, TERMINAL, Time, bytes, duration, message, useInterval, useSession } from '../ui.js';

/** Attempt events kept for the history. */
const MAX_ATTEMPT_EVENTS = 200;

interface AttemptEvent {
  id: string;
  ts: number;
  type: string;
  attempt?: number;
  worker?: string;
  error?: string;
  retry_in_ms?: number;
}

/** The live view: from `jobs.watch` with a token, else the record read every second. */
function useJobView(s: Session, id: string): JobView | null {
  const [view, setView] = useState<JobView | null>(null);
  useEffect(() => {
    setView(null);
    if (s.live) {
      const w = s.client.jobs.watch(id);
      setView(w.view);
      const off = w.onChange(setView);
      w.done.catch(() => undefined);
      return () => {
        off();
        w.close();
      };
    }
    let stop = false;
    let timer: ReturnType<typeof setTimeout>;
    const tick = async () => {
      try {
        const r = await s.client.jobs.get(id);
        if (stop) return;
        const done = TERMINAL.includes(r.state);
        setView({ id, kind: r.kind, state: r.state, progress: r.progress, logs: [], text: r.output ?? '', result: r.result, error: r.error, attempts: r.attempts, record: r, done });
        if (!done) timer = setTimeout(tick, 1000);
      } catch (e) {
        if (!stop) setView((v) => ({ ...(v ?? blank(id)), error: message(e) }));
        timer = setTimeout(tick, 3000);
      }
    };
    void tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [s, id]);
  return view;
}

const blank = (id: string): JobView => ({ id, kind: null, state: null, progress: null, logs: [], text: '', result: null, error: null, attempts: 0, record: null, done: false });

/**
 * Starts, retries and failures of the job, from its topic's history. It
 * subscribes before `jobs.watch` does (so from the first retained event);
 * when the topic is already followed, from now on.
 */
function useAttempts(s: Session, id: string): AttemptEvent[] {
  const [list, setList] = useState<AttemptEvent[]>([]);
  useEffect(() => {
    setList([]);
    if (!s.live) return;
    const onEvent = (e: RelayEvent) => {
      if (e.type !== 'job.started' && e.type !== 'job.retrying' && e.type !== 'job.failed') return;
      const d = e.data ?? {};
      setList((l) => [...l, { id: e.id, ts: e.ts, type: e.type, attempt: d.attempt ?? d.attempts, worker: d.worker, error: d.error, retry_in_ms: d.retry_in_ms }].slice(-MAX_ATTEMPT_EVENTS));
    };
    const topic = `job:${id}`;
    const opts = { onEvent, onError: () => undefined };
    let sub: Subscription;
    try {
      sub = s.client.subscribe(topic, { ...opts, since: '0-0' });
    } catch {
      sub = s.client.subscribe(topic, opts);
    }
    return () => sub.unsubscribe();
  }, [s, id]);
  return list;
}

export function JobPage({ id }: { id: string }) {
  const s = useSession();
  const attempts = useAttempts(s, id);
  const view = useJobView(s, id);
  const [reason, setReason] = useState('');
  const [cancelError, setCancelError] = useState<string | null>(null);
  const [cancelling, setCancelling] = useState(false);
  const [, tick] = useState(0);
  useInterval(() => tick((n) => n + 1), view && !view.done ? 1000 : null);

  if (!view) return <p class="muted">Loading…</p>;
  const r: JobRecord | null = view.record;
  const ended = !!view.state && TERMINAL.includes(view.state);
  const p = view.state === 'completed' ? { ...(view.progress ?? {}), percent: 100 } : view.progress;

  const facts: [string, ComponentChildren][] = [
    ['state', <StateBadge state={view.state} />],
    ['kind', view.kind ?? '…'],
    ['owner', r?.owner ?? '…'],
    ['attempts', `${view.attempts}${r ? ` of ${r.max_attempts}` : ''}`],
    ['created', <Time at={r?.created_at} />],
    ['started', <Time at={r?.started_at} />],
    ['finished', <Time at={r?.finished_at} />],
  ];
  const worker = [...attempts].reverse().find((a) => a.type === 'job.started')?.worker;
  if (worker) facts.push(['worker', <span class="mono">{worker}</span>]);
  if (r?.started_at) facts.push(['took', duration((r.finished_at ? Date.parse(r.finished_at) : Date.now()) - Date.parse(r.started_at))]);

  const cancel = async () => {
    setCancelling(true);
    setCancelError(null);
    try {
      await s.client.jobs.cancel(id, reason.trim() || undefined);
    } catch (e) {
      setCancelError(message(e));
    } finally {
      setCancelling(false);
    }
  };

  return (
    <div class="job" data-state={view.state ?? ''}>
      <Section
        title={`Job ${id}`}
        actions={
          <div class="filters">
            <a href={href(['jobs'])}>← all jobs</a>
            {!ended && (
              <>
                <input name="reason" placeholder="reason (optional)" value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
                <button class="danger" name="cancel" onClick={cancel} disabled={cancelling || !view.state}>
                  {cancelling ? 'Cancelling…' : 'Cancel job'}
                </button>
              </>
            )}
          </div>
        }
      >
        <ErrorBox error={cancelError} />
        <dl class="facts">
          {facts.map(([k, v]) => (
            <div key={k} class={`fact-${k}`}>
              <dt>{k}</dt>
              <dd>{v}</dd>
            </div>
          ))}
        </dl>
        <Progress p={p} running={view.state === 'running'} />
        {view.error && (
          <p class={view.state === 'cancelled' ? 'notice' : 'error'} role="alert">
            <b>{view.state === 'cancelled' ? 'Cancelled: ' : view.state === 'failed' ? 'Failed: ' : 'Error: '}</b>
            {view.error}
          </p>
        )}
      </Section>

      {attempts.some((a) => a.type !== 'job.started' || (a.attempt ?? 1) > 1) && (
        <Section title="Attempts">
          <ol class="attempt-list">
            {attempts.map((a) => (
              <li key={a.id} class={a.type.replace('.', '-')}>
                <Time at={a.ts} />{' '}
                {a.type === 'job.started' ? (
                  <>
                    attempt {a.attempt} started{a.worker ? ` on ${a.worker}` : ''}
                  </>
                ) : a.type === 'job.retrying' ? (
                  <>
                    attempt {a.attempt} failed: <span class="error-text">{a.error}</span>; retry in {duration(a.retry_in_ms ?? 0)}
                  </>
                ) : (
                  <>
                    failed after {a.attempt} attempts: <span class="error-text">{a.error}</span>
                  </>
                )}
              </li>
            ))}
          </ol>
        </Section>
      )}

      {(view.text || view.kind === 'stream') && (
        <Section title="Output">
          <pre class="output">{view.text || <span class="muted">nothing streamed yet</span>}</pre>
        </Section>
      )}

      {ended && view.state === 'completed' && (
        <Section title="Result">
          <Tiles value={view.result} />
          <div class="json">
            <Json value={view.result} />
          </div>
        </Section>
      )}

      {r?.artifacts && r.artifacts.length > 0 && <Artifacts id={id} list={r.artifacts} />}

      {(view.logs.length > 0 || !ended) && <Logs logs={view.logs} live={s.live} />}

      {r && (
        <Section title="Payload">
          <div class="json">
            <Json value={r.payload} depth={1} />
          </div>
        </Section>
      )}
    </div>
  );
}

/** The top-level numbers of a result (counts, sizes), large. */
function Tiles({ value }: { value: unknown }) {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return null;
  const nums = Object.entries(value as Record<string, unknown>)
    .filter((e): e is [string, number] => typeof e[1] === 'number')
    // Totals first (a result's keys come in alphabetical order).
    .sort(([a], [b]) => Number(b.startsWith('total')) - Number(a.startsWith('total')));
  if (!nums.length) return null;
  return (
    <div class="tiles">
      {nums.map(([k, v]) => (
        <div key={k} class="tile">
          <b>{v.toLocaleString()}</b>
          <span>{k.replace(/_/g, ' ')}</span>
        </div>
      ))}
    </div>
  );
}

function Progress({ p, running }: { p: JobProgress | null; running: boolean }) {
  if (!p && !running) return null;
  const pct = Math.max(0, Math.min(100, Number(p?.percent ?? 0)));
  const { percent: _p, step, message: msg, processed, total, eta_ms, ...extra } = p ?? { percent: 0 };
  return (
    <div class="progress-block">
      <div class="progress-line">
        <progress max={100} value={pct} aria-label="progress" />
        <b class="percent">{Math.round(pct)} %</b>
      </div>
      <div class="progress-facts">
        {step && (
          <span class="step">
            step <b>{String(step)}</b>
          </span>
        )}
        {msg && <span class="message">{String(msg)}</span>}
        {typeof processed === 'number' && (
          <span>
            {processed.toLocaleString()}
            {typeof total === 'number' ? ` of ${total.toLocaleString()}` : ''} processed
          </span>
        )}
        {typeof eta_ms === 'number' && running && <span class="eta">about {duration(eta_ms)} left</span>}
        {Object.entries(extra).map(([k, v]) => (
          <span key={k}>
            {k.replace(/_/g, ' ')}: <b>{typeof v === 'object' ? JSON.stringify(v) : String(v)}</b>
          </span>
        ))}
      </div>
    </div>
  );
}

function Logs({ logs, live }: { logs: JobView['logs']; live: boolean }) {
  const box = useRef<HTMLOListElement>(null);
  const stick = useRef(true);
  useEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [logs.length]);
  return (
    <Section title={`Logs (${logs.length})`}>
      {logs.length === 0 ? (
        <p class="muted">{live ? 'No log lines yet.' : 'Log lines arrive as events: sign in with a token to see them.'}</p>
      ) : (
        <ol class="logs" ref={box} onScroll={(e) => {
          const el = e.currentTarget as HTMLElement;
          stick.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
        }}>
          {logs.map((l) => (
            <li key={l.id} class={`log-${l.level}`}>
              <Time at={l.ts} /> <span class="level">{l.level}</span> {l.message}
            </li>
          ))}
        </ol>
      )}
    </Section>
  );
}

function Artifacts({ id, list }: { id: string; list: JobArtifact[] }) {
  const s = useSession();
  const [error, setError] = useState<string | null>(null);
  return (
    <Section title="Artifacts">
      <ErrorBox error={error} />
      <table class="artifacts">
        <thead>
          <tr>
            <th>file</th>
            <th>type</th>
            <th>size</th>
            <th>sha256</th>
          </tr>
        </thead>
        <tbody>
          {list.map((a) => {
            const path = `/v1/jobs/${encodeURIComponent(id)}/artifacts/${encodeURIComponent(a.name)}`;
            const link = s.linkFor(path);
            return (
              <tr key={a.name}>
                <td>
                  {link ? (
                    <a class="download" href={link} download={a.name} rel="noreferrer">
                      ⤓ {a.name}
                    </a>
                  ) : (
                    <button class="link download" onClick={() => s.download(path, a.name).catch((e) => setError(message(e)))}>
                      ⤓ {a.name}
                    </button>
                  )}
                </td>
                <td>{a.content_type}</td>
                <td title={`${a.bytes} bytes`}>{bytes(a.bytes)}</td>
                <td class="mono hash" title={a.sha256}>
                  {a.sha256.slice(0, 16)}…
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </Section>
  );
}
