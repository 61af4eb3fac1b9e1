// Pieces every page uses: the session context, live topics, timers, and
// small components (state badges, times, collapsible JSON, errors).
import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import type { JobState, RelayEvent } from 'relay-client';
import type { Session } from './session.js';

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('no session');
  return s;
}

/** Calls `fn` every `ms` while mounted (and `ms` is not null). */
export function useInterval(fn: () => void, ms: number | null): void {
  const f = useRef(fn);
  f.current = fn;
  useEffect(() => {
    if (ms === null) return;
    const t = setInterval(() => f.current(), ms);
    return () => clearInterval(t);
  }, [ms]);
}

/**
 * Follows a topic while mounted: `onEvent` for each event, `onReset` when
 * the server cannot vouch for what was missed. Without live credentials
 * (an API key only) `onReset` is called every `fallbackMs` instead.
 */
export function useTopic(topic: string | null, onEvent: (e: RelayEvent) => void, onReset: () => void, fallbackMs = 3000): void {
  const s = useSession();
  const h = useRef({ onEvent, onReset });
  h.current = { onEvent, onReset };
  useEffect(() => {
    if (!topic) return;
    if (!s.live) {
      const t = setInterval(() => h.current.onReset(), fallbackMs);
      return () => clearInterval(t);
    }
    const sub = s.client.subscribe(topic, {
      onEvent: (e) => h.current.onEvent(e),
      onReset: () => h.current.onReset(),
      onError: () => undefined,
    });
    return () => sub.unsubscribe();
  }, [s, topic, fallbackMs]);
}

/** Runs `load` when `deps` change; gives its value, its error, and a way to run it again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): { value: T | undefined; error: string | null; reload: () => Promise<void>; loading: boolean } {
  const [value, setValue] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const fn = useRef(load);
  fn.current = load;
  const reload = async () => {
    const n = ++seq.current;
    setLoading(true);
    try {
      const v = await fn.current();
      if (n === seq.current) {
        setValue(v);
        setError(null);
      }
    } catch (e) {
      if (n === seq.current) setError(message(e));
    } finally {
      if (n === seq.current) setLoading(false);
    }
  };
  useEffect(() => {
    void reload();
  }, deps);
  return { value, error, reload, loading };
}

export const message = (e: unknown): string => {
  const err = e as { code?: string; message?: string };
  if (err && typeof err.message === 'string') return err.code && !err.message.includes(err.code) ? `${err.message} (${err.code})` : err.message;
  return String(e);
};

export const TERMINAL: JobState[] = ['completed', 'failed', 'cancelled'];
export const STATES: JobState[] = ['queued', 'running', 'completed', 'failed', 'cancelled'];

export function StateBadge({ state }: { state: string | null | undefined }) {
  return <span class={`badge state-${state ?? 'unknown'}`}>{state ?? '…'}</span>;
}

/** A time as the browser's locale shows it, with the ISO text as a tooltip. */
export function Time({ at }: { at: string | number | null | undefined }) {
  if (at === null || at === undefined || at === '') return <span class="muted">—</span>;
  const d = new Date(at);
  if (isNaN(d.getTime())) return <span>{String(at)}</span>;
  const today = d.toDateString() === new Date().toDateString();
  return <time dateTime={d.toISOString()} title={d.toISOString()}>{today ? d.toLocaleTimeString() : d.toLocaleString()}</time>;
}

/** `1.2 s`, `3 min 20 s`, `2 h 5 min`. */
export function duration(ms: number): string {
  if (!isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const u = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${u[i]}`;
}

export function ErrorBox({ error }: { error: string | null | undefined }) {
  return error ? (
    <p class="error" role="alert">
      {error}
    </p>
  ) : null;
}

export function Section({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="card">
      <header>
        <h2>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

/** Entries of an array or object shown at most, per level. */
const MAX_ENTRIES = 200;

/** JSON as a tree of native `<details>`: objects and arrays fold; the first levels open. */
export function Json({ value, depth = 0, name }: { value: unknown; depth?: number; name?: string }) {
  const key = name !== undefined ? <span class="j-key">{name}: </span> : null;
  if (value === null || typeof value !== 'object') {
    const cls = value === null ? 'j-null' : typeof value === 'string' ? 'j-str' : typeof value === 'number' ? 'j-num' : 'j-bool';
    return (
      <div class="j-leaf">
        {key}
        <span class={cls}>{JSON.stringify(value) ?? String(value)}</span>
      </div>
    );
  }
  const array = Array.isArray(value);
  const entries: [string, unknown][] = array ? (value as unknown[]).map((v, i) => [String(i), v]) : Object.entries(value as object);
  const [open, close] = array ? ['[', ']'] : ['{', '}'];
  if (!entries.length)
    return (
      <div class="j-leaf">
        {key}
        <span class="j-punct">{open + close}</span>
      </div>
    );
  return (
    <details class="j-node" open={depth < 2}>
      <summary>
        {key}
        <span class="j-punct">{open}</span>
        <span class="j-count">
          {entries.length} {array ? (entries.length === 1 ? 'item' : 'items') : entries.length === 1 ? 'key' : 'keys'}
        </span>
        <span class="j-punct j-close">{close}</span>
      </summary>
      <div class="j-body">
        {entries.slice(0, MAX_ENTRIES).map(([k, v]) => (
          <Json key={k} name={array ? undefined : k} value={v} depth={depth + 1} />
        ))}
        {entries.length > MAX_ENTRIES && <div class="muted">… {entries.length - MAX_ENTRIES} more</div>}
      </div>
      <div class="j-punct j-end">{close}</div>
    </details>
  );
}

/** A JSON text area that says whether its text parses. */
export function JsonEditor({ value, onInput, rows = 10, label }: { value: string; onInput: (text: string) => void; rows?: number; label: string }) {
  const err = jsonError(value);
  return (
    <label class="field">
      <span>{label}</span>
      <textarea class={`code${err ? ' invalid' : ''}`} rows={rows} spellcheck={false} value={value} onInput={(e) => onInput((e.target as HTMLTextAreaElement).value)} />
      {err ? <small class="error">{err}</small> : <small class="muted">valid JSON</small>}
    </label>
  );
}

export function jsonError(text: string): string | null {
  try {
    JSON.parse(text);
    return null;
  } catch (e) {
    return `not JSON: ${(e as Error).message}`;
  }
}
