// The job list: newest first, filtered by state and kind, kept live from
// the state events of `jobs` (admins) or `user:{sub}` (users).
import { useEffect, useRef, useState } from 'preact/hooks';
import type { JobRecord, JobState, RelayEvent } from 'relay-client';
import { go, href, type Route } from '../router.js';
import { BUILT_IN } from '../kinds.js';
import { ErrorBox, Section, StateBadge, STATES, Time, duration, message, useSession, useTopic } from '../ui.js';

const PAGE = 50;
/** Records fetched at once after events; past this the page reloads instead. */
const MAX_FETCHES = 16;
/** Coalesces a burst of events into one reload. */
const RELOAD_MS = 400;
/** Rows whose running job's progress is followed live (its `job:{id}` topic), at most. */
const MAX_LIVE_ROWS = 20;

const STATE_OF: Record<string, JobState> = {
  'job.queued': 'queued',
  'job.started': 'running',
  'job.completed': 'completed',
  'job.failed': 'failed',
  'job.cancelled': 'cancelled',
};

const byNewest = (a: JobRecord, b: JobRecord) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : a.id < b.id ? 1 : -1);

export function JobsPage({ route }: { route: Route }) {
  const s = useSession();
  const state = route.query.get('state') ?? '';
  const kind = route.query.get('kind') ?? '';
  const [jobs, setJobs] = useState<JobRecord[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [kinds, setKinds] = useState<string[]>(Object.keys(BUILT_IN));
  const fetching = useRef(new Set<string>());
  const reloadTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const filter = useRef({ state, kind });
  filter.current = { state, kind };

  const matches = (r: JobRecord) => (!filter.current.state || r.state === filter.current.state) && (!filter.current.kind || r.kind === filter.current.kind);

  const load = async () => {
    const f = filter.current;
    try {
      const r = await s.client.jobs.list({ ...(f.state && { state: f.state as JobState }), ...(f.kind && { kind: f.kind }), limit: PAGE });
      if (f !== filter.current) return;
      setJobs(r.jobs);
      setNext(r.next_cursor);
      setError(null);
      addKinds(r.jobs.map((j) => j.kind));
    } catch (e) {
      setError(message(e));
    }
  };
  const more = async () => {
    if (!next) return;
    try {
      const r = await s.client.jobs.list({ ...(state && { state: state as JobState }), ...(kind && { kind }), limit: PAGE, cursor: next });
      setJobs((js) => dedupe([...(js ?? []), ...r.jobs]));
      setNext(r.next_cursor);
    } catch (e) {
      setError(message(e));
    }
  };
  const addKinds = (ks: string[]) => setKinds((old) => (ks.every((k) => old.includes(k)) ? old : [...new Set([...old, ...ks])].sort()));

  const reloadSoon = () => {
    clearTimeout(reloadTimer.current);
    reloadTimer.current = setTimeout(load, RELOAD_MS);
  };
  const upsert = (r: JobRecord) => {
    addKinds([r.kind]);
    setJobs((js) => {
      if (!js) return js;
      const rest = js.filter((j) => j.id !== r.id);
      if (!matches(r)) return rest.length === js.length ? js : rest;
      return [...rest, r].sort(byNewest);
    });
  };
  const onEvent = (e: RelayEvent) => {
    const to = STATE_OF[e.type];
    if (!to) return;
    const d = e.data ?? {};
    if (d.job && typeof d.job.id === 'string') return upsert(d.job as JobRecord);
    const id = typeof d.job_id === 'string' ? d.job_id : null;
    if (!id || fetching.current.size >= MAX_FETCHES) return reloadSoon();
    // Shown at once from the event; the record follows.
    setJobs((js) => js && js.map((j) => (j.id === id ? { ...j, state: to } : j)));
    if (fetching.current.has(id)) return;
    fetching.current.add(id);
    s.client.jobs
      .get(id)
      .then(upsert, () => reloadSoon())
      .finally(() => fetching.current.delete(id));
  };

  useEffect(() => {
    setJobs(null);
    void load();
  }, [state, kind]);
  useEffect(() => () => clearTimeout(reloadTimer.current), []);
  useTopic(s.jobsTopic, onEvent, reloadSoon);
  useEffect(() => {
    if (!s.server) return;
    s.request<{ queues?: { kind: string }[] }>('GET', '/v1/status', undefined, true).then(
      (st) => addKinds((st.queues ?? []).map((q) => q.kind)),
      () => undefined,
    );
  }, [s]);

  const setFilter = (k: 'state' | 'kind', v: string) => go(['jobs'], { state, kind, [k]: v });
  return (
    <Section
      title={s.me.admin ? 'Jobs' : `Your jobs (${s.me.sub})`}
      actions={
        <div class="filters">
          <label>
            state{' '}
            <select name="state" value={state} onChange={(e) => setFilter('state', (e.target as HTMLSelectElement).value)}>
              <option value="">any</option>
              {STATES.map((st) => (
                <option key={st} value={st}>
                  {st}
                </option>
              ))}
            </select>
          </label>
          <label>
            kind{' '}
            <select name="kind" value={kind} onChange={(e) => setFilter('kind', (e.target as HTMLSelectElement).value)}>
              <option value="">any</option>
              {(kinds.includes(kind) || !kind ? kinds : [...kinds, kind]).map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
            </select>
          </label>
          <a class="button primary" href={href(['submit'], { kind })}>
            Submit a job
          </a>
        </div>
      }
    >
      <ErrorBox error={error} />
      {jobs === null ? (
        <p class="muted">Loading…</p>
      ) : jobs.length === 0 ? (
        <p class="muted empty">No jobs{state || kind ? ' match these filters' : ' yet'}.</p>
      ) : (
        <table class="jobs">
          <thead>
            <tr>
              <th>job</th>
              <th>kind</th>
              <th>state</th>
              <th>progress</th>
              {s.me.admin && <th>owner</th>}
              <th>attempts</th>
              <th>created</th>
              <th>took</th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((j, i) => (
              <tr key={j.id} data-job={j.id} data-state={j.state}>
                <td>
                  <a class="mono" href={href(['jobs', j.id])}>
                    {j.id}
                  </a>
                </td>
                <td>{j.kind}</td>
                <td>
                  <StateBadge state={j.state} />
                </td>
                <td class="progress-cell">
                  <RowProgress job={j} live={i < MAX_LIVE_ROWS} />
                </td>
                {s.me.admin && <td>{j.owner}</td>}
                <td>
                  {j.attempts}/{j.max_attempts}
                </td>
                <td>
                  <Time at={j.created_at} />
                </td>
                <td>{j.started_at && j.finished_at ? duration(Date.parse(j.finished_at) - Date.parse(j.started_at)) : <span class="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next && (
        <button class="more" onClick={more}>
          Load more
        </button>
      )}
    </Section>
  );
}

/** A row's progress: the record's, then live from the job's topic while it runs. */
function RowProgress({ job, live }: { job: JobRecord; live: boolean }) {
  const [pct, setPct] = useState<number | null>(null);
  useEffect(() => setPct(null), [job.id, job.state]);
  useTopic(
    live && job.state === 'running' ? `job:${job.id}` : null,
    (e) => {
      if (e.type === 'job.progress' && typeof e.data?.percent === 'number') setPct(e.data.percent);
    },
    () => undefined,
  );
  const value = job.state === 'completed' ? 100 : (pct ?? job.progress?.percent ?? null);
  if (value === null && job.state !== 'running') return <span class="muted">—</span>;
  const v = Math.max(0, Math.min(100, value ?? 0));
  return (
    <>
      <progress max={100} value={v} />
      <small>{Math.round(v)} %</small>
    </>
  );
}

function dedupe(js: JobRecord[]): JobRecord[] {
  const seen = new Set<string>();
  return js.filter((j) => !seen.has(j.id) && (seen.add(j.id), true));
}
