// Dead letters: jobs that ended `failed`, most recent first; a re-drive
// records a new job with the same kind, owner and payload.
import { useState } from 'preact/hooks';
import type { JobRecord, RelayEvent } from 'relay-client';
import { go, href, type Route } from '../router.js';
import { ErrorBox, Section, Time, message, useLoad, useSession, useTopic } from '../ui.js';

interface Page {
  jobs: JobRecord[];
  next_cursor: string | null;
}

export function DeadPage({ route }: { route: Route }) {
  const s = useSession();
  const kind = route.query.get('kind') ?? '';
  const [extra, setExtra] = useState<JobRecord[]>([]);
  const [next, setNext] = useState<string | null | undefined>(undefined);
  /** Re-driven here: the dead letter and its new job (kept on screen until the page is left). */
  const [done, setDone] = useState<Record<string, { job: JobRecord; to: string }>>({});
  const [error, setError] = useState<string | null>(null);
  const q = (cursor?: string) => `/v1/dead-letters?limit=50${kind ? '&kind=' + encodeURIComponent(kind) : ''}${cursor ? '&cursor=' + encodeURIComponent(cursor) : ''}`;
  const first = useLoad(async () => {
    const p = await s.request<Page>('GET', q(), undefined, true);
    setExtra([]);
    setNext(p.next_cursor);
    return p.jobs;
  }, [kind]);
  useTopic(
    'jobs',
    (e: RelayEvent) => {
      if (e.type === 'job.failed') void first.reload();
    },
    () => void first.reload(),
  );
  const more = async () => {
    if (!next) return;
    try {
      const p = await s.request<Page>('GET', q(next), undefined, true);
      setExtra((x) => [...x, ...p.jobs]);
      setNext(p.next_cursor);
    } catch (e) {
      setError(message(e));
    }
  };
  const redrive = async (job: JobRecord) => {
    setError(null);
    try {
      const r = await s.request<{ id: string }>('POST', `/v1/dead-letters/${encodeURIComponent(job.id)}/redrive`, {}, true);
      setDone((d) => ({ ...d, [job.id]: { job, to: r.id } }));
    } catch (e) {
      setError(message(e));
    }
  };
  const all = [...(first.value ?? []), ...extra];
  const ids = new Set(all.map((j) => j.id));
  // A re-driven dead letter leaves the list; here it stays, naming its new job.
  const shown = [...all, ...Object.values(done).map((d) => d.job).filter((j) => !ids.has(j.id))]
    .filter((j, i, a) => a.findIndex((x) => x.id === j.id) === i)
    .sort((a, b) => ((b.finished_at ?? '') > (a.finished_at ?? '') ? 1 : -1));
  return (
    <Section
      title="Dead letters"
      actions={
        <div class="filters">
          <label>
            kind{' '}
            <input name="kind" placeholder="any" value={kind} onChange={(e) => go(['dead'], { kind: (e.target as HTMLInputElement).value.trim() })} />
          </label>
          <button onClick={() => first.reload()}>Refresh</button>
        </div>
      }
    >
      <p class="muted">Jobs that failed for good (every attempt used, or a failure that cannot be retried). Re-driving one submits it again as a new job.</p>
      <ErrorBox error={first.error ?? error} />
      {first.value === undefined && !first.error ? (
        <p class="muted">Loading…</p>
      ) : shown.length === 0 ? (
        <p class="muted empty">No dead letters{kind ? ` of kind ${kind}` : ''}.</p>
      ) : (
        <table class="dead">
          <thead>
            <tr>
              <th>job</th>
              <th>kind</th>
              <th>owner</th>
              <th>attempts</th>
              <th>error</th>
              <th>failed</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {shown.map((j) => (
              <tr key={j.id} data-job={j.id}>
                <td>
                  <a class="mono" href={href(['jobs', j.id])}>
                    {j.id}
                  </a>
                </td>
                <td>{j.kind}</td>
                <td>{j.owner}</td>
                <td>
                  {j.attempts}/{j.max_attempts}
                </td>
                <td class="error-text wrap">{j.error}</td>
                <td>
                  <Time at={j.finished_at} />
                </td>
                <td>
                  {done[j.id] ? (
                    <span class="redriven">
                      re-driven as{' '}
                      <a class="mono" href={href(['jobs', done[j.id]!.to])}>
                        {done[j.id]!.to}
                      </a>
                    </span>
                  ) : (
                    <button name="redrive" onClick={() => redrive(j)}>
                      Re-drive
                    </button>
                  )}
                </td>
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
