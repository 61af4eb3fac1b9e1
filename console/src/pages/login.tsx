// Sign-in with RELAY_AUTH=jwt: a token (what a user or admin sees), and an
// optional server API key (cluster status and dead letters).
import { useState } from 'preact/hooks';
import { claims, type Creds } from '../session.js';
import { ErrorBox } from '../ui.js';

export function Login({ onSignIn, notice }: { onSignIn: (c: Creds) => Promise<void>; notice: string | null }) {
  const [token, setToken] = useState('');
  const [apiKey, setApiKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const who = token.trim() ? claims(token.trim()) : null;
  const submit = async (e: Event) => {
    e.preventDefault();
    const c: Creds = {};
    if (token.trim()) c.token = token.trim();
    if (apiKey.trim()) c.apiKey = apiKey.trim();
    if (!c.token && !c.apiKey) return setError('Give a token, an API key, or both.');
    if (c.token && !claims(c.token)) return setError('That is not a JWT (three base64url parts with a `sub` claim).');
    setBusy(true);
    setError(null);
    try {
      await onSignIn(c);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form class="card" onSubmit={submit}>
        <h1>
          <span class="logo">◆</span> Relay console
        </h1>
        <p class="muted">This gateway checks tokens (RELAY_AUTH=jwt). The token stays in this tab only (sessionStorage).</p>
        <ErrorBox error={notice} />
        <label class="field">
          <span>Token (JWT)</span>
          <textarea name="token" class="code" rows={4} spellcheck={false} value={token} onInput={(e) => setToken((e.target as HTMLTextAreaElement).value)} placeholder="eyJhbGciOi…" />
          {who && (
            <small class="muted">
              signs in as <b>{who.sub}</b>
              {who.admin ? ' (admin: every job)' : ' (user: own jobs)'}
              {who.exp ? `, until ${new Date(who.exp * 1000).toLocaleString()}` : ''}
            </small>
          )}
        </label>
        <label class="field">
          <span>Server API key (optional)</span>
          <input name="api-key" type="password" autoComplete="off" value={apiKey} onInput={(e) => setApiKey((e.target as HTMLInputElement).value)} placeholder="X-Api-Key, for cluster status and dead letters" />
        </label>
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
