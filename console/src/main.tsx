// The console: finds whether the gateway checks tokens, signs in when it
// does, and shows the pages (jobs, a job, submit, dead letters, topics,
// cluster) under one header.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ConnectionState, TransportKind } from 'relay-client';
import { ClusterPage } from './pages/cluster.js';
import { DeadPage } from './pages/dead.js';
import { JobPage } from './pages/job.js';
import { JobsPage } from './pages/jobs.js';
import { Login } from './pages/login.js';
import { SubmitPage } from './pages/submit.js';
import { TopicsPage } from './pages/topics.js';
import { href, useRoute, type Route } from './router.js';
import { Session, probeAuth, storeCreds, storedCreds, type AuthMode, type Creds } from './session.js';
import { ErrorBox, SessionContext, message, useSession } from './ui.js';
import './style.css';

/** Checks credentials against the gateway before keeping them. */
async function signIn(mode: AuthMode, c: Creds): Promise<Session> {
  const s = new Session(mode, c);
  try {
    if (c.token) await s.client.jobs.list({ limit: 1 });
    if (c.apiKey) await s.request('GET', '/v1/status', undefined, true);
  } catch (e) {
    s.close();
    throw new Error(`The gateway refused ${c.token ? 'the token' : 'the API key'}: ${message(e)}`);
  }
  return s;
}

function App() {
  const [mode, setMode] = useState<AuthMode | null>(null);
  const [session, setSession] = useState<Session | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [fatal, setFatal] = useState<string | null>(null);

  const start = async () => {
    setFatal(null);
    try {
      const m = await probeAuth();
      setMode(m);
      if (m === 'off') return setSession(new Session('off', {}));
      const stored = storedCreds();
      if (stored) setSession(await signIn(m, stored).catch((e) => (setNotice(message(e)), storeCreds(null), null)));
    } catch (e) {
      setFatal(message(e));
    }
  };
  useEffect(() => void start(), []);

  const signOut = (why: string | null) => {
    storeCreds(null);
    session?.close();
    setSession(null);
    setNotice(why);
  };
  useEffect(() => {
    if (!session) return;
    return session.client.on('error', (e) => {
      if (e.code === 'TOKEN_EXPIRED') signOut('The token expired: sign in again.');
    });
  }, [session]);

  if (fatal)
    return (
      <main class="login">
        <div class="card">
          <h1>Relay console</h1>
          <ErrorBox error={`Cannot reach the gateway's API: ${fatal}`} />
          <button onClick={start}>Try again</button>
        </div>
      </main>
    );
  if (!mode) return <p class="muted boot">Connecting…</p>;
  if (!session)
    return (
      <Login
        notice={notice}
        onSignIn={async (c) => {
          const s = await signIn(mode, c);
          storeCreds(c);
          setNotice(null);
          setSession(s);
        }}
      />
    );
  return (
    <SessionContext.Provider value={session}>
      <Shell onSignOut={() => signOut(null)} />
    </SessionContext.Provider>
  );
}

function Shell({ onSignOut }: { onSignOut: () => void }) {
  const route = useRoute();
  const s = useSession();
  const page = route.path[0] ?? 'jobs';
  const nav: [string, string, boolean][] = [
    ['jobs', 'Jobs', true],
    ['submit', 'Submit', true],
    ['dead', 'Dead letters', s.server],
    ['topics', 'Topics', true],
    ['cluster', 'Cluster', s.server],
  ];
  return (
    <>
      <header class="top">
        <a class="brand" href={href(['jobs'])}>
          <span class="logo">◆</span> Relay
        </a>
        <nav>
          {nav
            .filter(([, , shown]) => shown)
            .map(([p, label]) => (
              <a key={p} href={href([p])} class={p === page ? 'active' : ''} aria-current={p === page ? 'page' : undefined}>
                {label}
              </a>
            ))}
        </nav>
        <div class="who">
          <Connection />
          <span class="me" title={s.me.exp ? `token valid until ${new Date(s.me.exp * 1000).toLocaleString()}` : ''}>
            {s.mode === 'off' ? 'auth off' : s.creds.token ? s.me.sub : 'API key'}
            {s.me.admin && <span class="pill">admin</span>}
          </span>
          {s.mode === 'jwt' && (
            <button class="link" onClick={onSignOut}>
              Sign out
            </button>
          )}
        </div>
      </header>
      <main class={`page page-${page}`}>
        <Page route={route} />
      </main>
    </>
  );
}

function Page({ route }: { route: Route }) {
  const s = useSession();
  const [p, id] = route.path;
  switch (p ?? 'jobs') {
    case 'jobs':
      return id ? <JobPage key={id} id={id} /> : <JobsPage route={route} />;
    case 'submit':
      return <SubmitPage kind={route.query.get('kind')} />;
    case 'dead':
      return s.server ? <DeadPage route={route} /> : <Forbidden />;
    case 'topics':
      return <TopicsPage />;
    case 'cluster':
      return s.server ? <ClusterPage /> : <Forbidden />;
    default:
      return <p class="muted">No such page. <a href={href(['jobs'])}>Jobs</a></p>;
  }
}

const Forbidden = () => <p class="muted">This page is part of the server API: sign in with an admin token or an API key.</p>;

/** The live connection's state (WebSocket, SSE or long-poll). */
function Connection() {
  const s = useSession();
  const [st, setSt] = useState<{ state: ConnectionState; transport: TransportKind | null }>({ state: s.client.state, transport: s.client.transport });
  useEffect(() => s.client.on('state', (c) => setSt({ state: c.state, transport: c.transport })), [s]);
  if (!s.live) return <span class="conn conn-off" title="no token: pages refresh every few seconds">polling</span>;
  const label = st.state === 'connected' ? `live · ${st.transport}` : st.state === 'idle' ? 'idle' : st.state;
  return (
    <span class={`conn conn-${st.state}`} data-conn={st.state}>
      {label}
    </span>
  );
}

render(<App />, document.getElementById('app')!);
