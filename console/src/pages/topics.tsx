// Topics: subscribe to any topic the token allows and watch its events
// live; publish a test event (`POST /v1/send` as the token's user, or
// `POST /v1/publish` with only an API key).
import { useEffect, useState } from 'preact/hooks';
import type { RelayError, RelayEvent, Subscription } from 'relay-client';
import { ErrorBox, JsonEditor, Json, Section, Time, jsonError, message, useInterval, useSession } from '../ui.js';

/** Events kept per watched topic (the latest). */
const MAX_EVENTS = 500;
/** Topics watched at once. */
const MAX_WATCHED = 20;
const TOPIC = /^[A-Za-z0-9._:@-]{1,128}$/;
const STORE = 'relay-console:topics';

interface Watched {
  topic: string;
  since?: string;
}

export function TopicsPage() {
  const s = useSession();
  const [watched, setWatched] = useState<Watched[]>(() => {
    try {
      const w = JSON.parse(sessionStorage.getItem(STORE) ?? '[]');
      return Array.isArray(w) ? w.filter((x) => typeof x?.topic === 'string' && TOPIC.test(x.topic)) : [];
    } catch {
      return [];
    }
  });
  const [topic, setTopic] = useState('');
  const [from, setFrom] = useState('now');
  const [error, setError] = useState<string | null>(null);
  useEffect(() => sessionStorage.setItem(STORE, JSON.stringify(watched.map((w) => ({ topic: w.topic })))), [watched]);

  const suggestions = [...new Set([...(s.me.admin ? ['jobs'] : []), `user:${s.me.sub}`, 'broadcast', ...s.me.topics.map((p) => p.replace(/\*\*?/g, 'demo'))])];
  const add = (e: Event) => {
    e.preventDefault();
    const t = topic.trim();
    if (!TOPIC.test(t)) return setError('A topic is 1 to 128 characters of A-Z a-z 0-9 . _ : @ -');
    if (watched.some((w) => w.topic === t)) return setError(`Already watching ${t}.`);
    if (watched.length >= MAX_WATCHED) return setError(`At most ${MAX_WATCHED} topics at once.`);
    setError(null);
    setWatched([{ topic: t, ...(from === 'start' && { since: '0-0' }) }, ...watched]);
    setTopic('');
  };
  if (!s.live) return <Section title="Topics">{<p class="muted">Watching topics needs a token: sign in with one.</p>}</Section>;
  return (
    <div class="topics">
      <div class="topics-top">
        <Section title="Watch a topic">
          <form class="row" onSubmit={add}>
            <label class="field grow">
              <span>topic</span>
              <input name="topic" list="topic-suggestions" placeholder="chat:room1" value={topic} onInput={(e) => setTopic((e.target as HTMLInputElement).value)} />
              <datalist id="topic-suggestions">
                {suggestions.map((t) => (
                  <option key={t} value={t} />
                ))}
              </datalist>
            </label>
            <label class="field small">
              <span>from</span>
              <select name="from" value={from} onChange={(e) => setFrom((e.target as HTMLSelectElement).value)}>
                <option value="now">now on</option>
                <option value="start">the retained history</option>
              </select>
            </label>
            <button type="submit" class="primary">
              Subscribe
            </button>
          </form>
          <p class="muted">
            This token may subscribe to: {s.me.admin ? 'every topic (admin)' : [`user:${s.me.sub}`, 'broadcast', ...s.me.topics].join(', ')}.
          </p>
          <ErrorBox error={error} />
        </Section>
        <Publish topics={watched.map((w) => w.topic)} />
      </div>
      {watched.map((w) => (
        <TopicPane key={w.topic} w={w} onClose={() => setWatched((ws) => ws.filter((x) => x.topic !== w.topic))} />
      ))}
    </div>
  );
}

function TopicPane({ w, onClose }: { w: Watched; onClose: () => void }) {
  const s = useSession();
  const [events, setEvents] = useState<RelayEvent[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [resets, setResets] = useState(0);
  const [sub, setSub] = useState<Subscription | null>(null);
  const [, tick] = useState(0);
  useEffect(() => {
    try {
      const x = s.client.subscribe(w.topic, {
        ...(w.since && { since: w.since }),
        onEvent: (e) => setEvents((l) => [e, ...l].slice(0, MAX_EVENTS)),
        onReset: () => setResets((n) => n + 1),
        onError: (e: RelayError) => setError(message(e)),
      });
      setSub(x);
      return () => x.unsubscribe();
    } catch (e) {
      setError(message(e));
      return undefined;
    }
  }, [s, w.topic]);
  // The subscription has a position once the server confirmed it.
  useInterval(() => tick((n) => n + 1), sub?.position || error ? null : 250);
  const status = error ? 'refused' : s.client.state !== 'connected' ? 'connecting' : sub?.position ? 'live' : 'subscribing';
  return (
    <Section
      title={w.topic}
      actions={
        <div class="filters">
          <span class={`pill status-${status}`} data-status={status}>
            {status}
          </span>
          <span class="muted count">{events.length} events</span>
          <button onClick={() => setEvents([])}>Clear</button>
          <button onClick={onClose}>Unsubscribe</button>
        </div>
      }
    >
      <div class="pane" data-topic={w.topic}>
        <ErrorBox error={error} />
        {resets > 0 && <p class="notice">The server could not vouch for every event since the last position ({resets}×): some may be missing.</p>}
        {events.length === 0 && !error ? (
          <p class="muted">Waiting for events…</p>
        ) : (
          <ol class="events">
            {events.map((e) => (
              <li key={e.id} class="event">
                <details>
                  <summary>
                    <Time at={e.ts} /> <b class="type">{e.type}</b> <span class="mono muted">{e.id}</span> <code class="preview">{JSON.stringify(e.data)}</code>
                  </summary>
                  <div class="json">
                    <Json value={e.data} />
                  </div>
                </details>
              </li>
            ))}
          </ol>
        )}
      </div>
    </Section>
  );
}

function Publish({ topics }: { topics: string[] }) {
  const s = useSession();
  const [topic, setTopic] = useState('');
  const [type, setType] = useState('test.event');
  const [data, setData] = useState('{\n  "hello": "from the console"\n}');
  const [result, setResult] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const target = topic.trim() || topics[0] || '';
  const send = async (e: Event) => {
    e.preventDefault();
    setResult(null);
    setError(null);
    if (!TOPIC.test(target)) return setError('Name a topic to publish to.');
    const body = { topic: target, type: type.trim() || 'test.event', data: JSON.parse(data) };
    try {
      const useKey = !s.creds.token && !!s.creds.apiKey;
      const r = await s.request<{ event_id: string }>('POST', useKey ? '/v1/publish' : '/v1/send', body, useKey);
      setResult(`published ${body.type} to ${target} as event ${r.event_id}`);
    } catch (err) {
      setError(message(err));
    }
  };
  return (
    <Section title="Publish a test event">
      <form class="publish" onSubmit={send}>
        <div class="row">
          <label class="field grow">
            <span>topic</span>
            <input name="publish-topic" placeholder={topics[0] ?? 'chat:room1'} value={topic} onInput={(e) => setTopic((e.target as HTMLInputElement).value)} />
          </label>
          <label class="field">
            <span>type</span>
            <input name="type" value={type} onInput={(e) => setType((e.target as HTMLInputElement).value)} />
          </label>
        </div>
        <JsonEditor label="data" value={data} onInput={setData} rows={3} />
        <button type="submit" class="primary" disabled={!!jsonError(data)}>
          Publish
        </button>
        {result && <p class="ok published">{result}</p>}
        <ErrorBox error={error} />
      </form>
    </Section>
  );
}
