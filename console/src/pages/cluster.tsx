// The cluster (`GET /v1/status`, every few seconds): gateways, workers
// (Rust, and over HTTP), queues with their waiting, running, delayed and
// dead counts, and the polling clients of the last minute.
import { useState } from 'preact/hooks';
import { href } from '../router.js';
import { ErrorBox, Section, duration, useInterval, useLoad, useSession } from '../ui.js';

/** How often the status is read again. */
export const REFRESH_MS = 3000;

interface Gateway {
  id: string;
  connections?: number;
  subscriptions?: number;
  topics?: number;
  clients?: number;
  uptime_s?: number;
  draining?: boolean;
}

interface Worker {
  id: string;
  kinds?: string[];
  running?: number;
  concurrency?: number;
  max?: number;
  started_at_ms?: number;
  seen_ms?: number;
  [field: string]: unknown;
}

interface Queue {
  kind: string;
  waiting: number | null;
  running: number | null;
  delayed: number | null;
  dead: number | null;
}

interface Status {
  gateways?: Gateway[];
  workers?: Worker[];
  queues?: Queue[];
  pollers?: number;
}

/** Whether a worker reports itself as one over HTTP (not a Rust `relay-worker`). */
const overHttp = (w: Worker) => w.http === true || w.transport === 'http' || w.via === 'http' || w.role === 'http-worker' || w.protocol === 'http';

const n = (v: number | null | undefined) => (typeof v === 'number' ? v.toLocaleString() : '—');

const sum = (xs: (number | null | undefined)[]) => xs.reduce<number>((a, x) => a + (typeof x === 'number' ? x : 0), 0);

/** The cluster at a glance. */
function totals(v: Status): [string, number][] {
  const q = v.queues ?? [];
  return [
    ['gateways', v.gateways?.length ?? 0],
    ['workers', v.workers?.length ?? 0],
    ['connections', sum((v.gateways ?? []).map((g) => g.connections))],
    ['waiting', sum(q.map((x) => x.waiting))],
    ['running', sum(q.map((x) => x.running))],
    ['delayed', sum(q.map((x) => x.delayed))],
    ['dead', sum(q.map((x) => x.dead))],
  ];
}

export function ClusterPage() {
  const s = useSession();
  const [at, setAt] = useState<number | null>(null);
  const st = useLoad(async () => {
    const v = await s.request<Status>('GET', '/v1/status', undefined, true);
    setAt(Date.now());
    return v;
  }, [s]);
  useInterval(() => void st.reload(), REFRESH_MS);
  const v = st.value;
  return (
    <div class="cluster">
      <p class="muted updated">
        {at ? `Updated ${new Date(at).toLocaleTimeString()}, every ${REFRESH_MS / 1000} s.` : 'Reading the status…'}
        {v && typeof v.pollers === 'number' && ` Polling clients in the last minute: ${v.pollers}.`}
      </p>
      <ErrorBox error={st.error} />
      {st.error && !s.creds.apiKey && s.mode === 'jwt' && <p class="muted">The status is part of the server API: sign in with an admin token or an API key.</p>}
      {v && (
        <>
          <div class="tiles totals">
            {totals(v).map(([k, x]) => (
              <div key={k} class="tile" data-total={k}>
                <b>{x.toLocaleString()}</b>
                <span>{k}</span>
              </div>
            ))}
          </div>
          <Section title={`Queues (${v.queues?.length ?? 0})`}>
            <table class="queues">
              <thead>
                <tr>
                  <th>kind</th>
                  <th class="num">waiting</th>
                  <th class="num">running</th>
                  <th class="num">delayed</th>
                  <th class="num">dead</th>
                </tr>
              </thead>
              <tbody>
                {(v.queues ?? []).map((q) => (
                  <tr key={q.kind} data-kind={q.kind}>
                    <td>
                      <a href={href(['jobs'], { kind: q.kind })}>{q.kind}</a>
                    </td>
                    <td class="num waiting">{n(q.waiting)}</td>
                    <td class="num running">{n(q.running)}</td>
                    <td class="num delayed">{n(q.delayed)}</td>
                    <td class="num dead">{q.dead ? <a href={href(['dead'], { kind: q.kind })}>{n(q.dead)}</a> : n(q.dead)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Section>
          <Section title={`Workers (${v.workers?.length ?? 0})`}>
            {!v.workers?.length ? (
              <p class="muted">No worker has reported in the last 15 s.</p>
            ) : (
              <table class="workers">
                <thead>
                  <tr>
                    <th>worker</th>
                    <th>runs as</th>
                    <th>kinds</th>
                    <th class="num">running</th>
                    <th class="num">up</th>
                  </tr>
                </thead>
                <tbody>
                  {v.workers.map((w) => (
                    <tr key={w.id} data-worker={w.id}>
                      <td class="mono">{w.id}</td>
                      <td>{overHttp(w) ? <span class="pill">over HTTP</span> : <span class="pill rust">Rust</span>}</td>
                      <td>{(w.kinds ?? []).join(', ')}</td>
                      <td class="num">
                        {n(w.running)}
                        {typeof (w.concurrency ?? w.max) === 'number' ? ` / ${w.concurrency ?? w.max}` : ''}
                      </td>
                      <td class="num">{w.started_at_ms ? duration(Date.now() - w.started_at_ms) : '—'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </Section>
          <Section title={`Gateways (${v.gateways?.length ?? 0})`}>
            <table class="gateways">
              <thead>
                <tr>
                  <th>gateway</th>
                  <th class="num">connections</th>
                  <th class="num">subscriptions</th>
                  <th class="num">topics</th>
                  <th class="num" title="WebSocket, SSE and waiting long-poll clients held">clients</th>
                  <th class="num">up</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {(v.gateways ?? []).map((g) => (
                  <tr key={g.id} data-gateway={g.id}>
                    <td class="mono">{g.id}</td>
                    <td class="num">{n(g.connections)}</td>
                    <td class="num">{n(g.subscriptions)}</td>
                    <td class="num">{n(g.topics)}</td>
                    <td class="num">{n(g.clients)}</td>
                    <td class="num">{typeof g.uptime_s === 'number' ? duration(g.uptime_s * 1000) : '—'}</td>
                    <td>{g.draining && <span class="pill warn">draining</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Section>
        </>
      )}
      {!v && st.loading && <p class="muted">Loading…</p>}
    </div>
  );
}
