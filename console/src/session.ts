// Who the console acts as, and how it talks to the gateway.
//
// With RELAY_AUTH=jwt the console asks for a token (kept in sessionStorage,
// so it lasts as long as the tab) and, optionally, a server API key: the
// token drives everything a user sees, live; the key, when given, is used
// for the server endpoints (cluster status, dead letters). With only a key
// the console still works, without live updates (pages refresh on a timer).
// With RELAY_AUTH=off nothing is asked: everyone is an admin.
import { RelayClient, RelayError } from 'relay-client';

export type AuthMode = 'off' | 'jwt';

export interface Creds {
  token?: string;
  apiKey?: string;
}

export interface Identity {
  sub: string;
  admin: boolean;
  /** Subscribe patterns of the token's `topics` claim. */
  topics: string[];
  /** Publish patterns of the token's `publish` claim. */
  publish: string[];
  /** Seconds since the epoch. */
  exp?: number;
}

const STORE = 'relay-console:creds';

/** The claims of a JWT, read without checking the signature (the gateway checks it). */
export function claims(token: string): Identity | null {
  try {
    const b = token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/');
    const c = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(b), (ch) => ch.charCodeAt(0))));
    if (typeof c?.sub !== 'string') return null;
    const list = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    return { sub: c.sub, admin: c.admin === true, topics: list(c.topics), publish: list(c.publish), ...(typeof c.exp === 'number' && { exp: c.exp }) };
  } catch {
    return null;
  }
}

export function storedCreds(): Creds | null {
  try {
    const c = JSON.parse(sessionStorage.getItem(STORE) ?? 'null');
    return c && (c.token || c.apiKey) ? c : null;
  } catch {
    return null;
  }
}

export function storeCreds(c: Creds | null): void {
  if (c) sessionStorage.setItem(STORE, JSON.stringify(c));
  else sessionStorage.removeItem(STORE);
}

async function toError(res: Response): Promise<RelayError> {
  const e = (await res.json().catch(() => null))?.error;
  return new RelayError(e?.code ?? `HTTP_${res.status}`, e?.message ?? `HTTP ${res.status}`, res.status === 429 || res.status >= 500, res.status);
}

/**
 * `off` when the gateway answers an unauthenticated job list, `jwt` when it
 * asks for credentials; throws on anything else (gateway down, 503).
 */
export async function probeAuth(): Promise<AuthMode> {
  let res: Response;
  try {
    res = await fetch('/v1/jobs?limit=1');
  } catch (e) {
    throw new RelayError('NETWORK', `the gateway did not answer: ${String(e)}`, true);
  }
  if (res.ok) return 'off';
  if (res.status === 401) return 'jwt';
  throw await toError(res);
}

export class Session {
  /** Jobs REST calls and, when `live`, subscriptions. */
  readonly client: RelayClient;
  readonly me: Identity;
  /** Subscriptions are possible (a token, or auth off). */
  readonly live: boolean;
  /** Whether the server endpoints may be tried (an admin, or an API key). */
  readonly server: boolean;

  constructor(
    readonly mode: AuthMode,
    readonly creds: Creds,
  ) {
    const token = mode === 'jwt' ? creds.token : undefined;
    const apiKey = mode === 'jwt' ? creds.apiKey : undefined;
    this.client = new RelayClient(token ? { token } : apiKey ? { apiKey } : {});
    if (mode === 'off') this.me = { sub: 'anonymous', admin: true, topics: ['**'], publish: ['**'] };
    else if (token) this.me = claims(token) ?? { sub: '?', admin: false, topics: [], publish: [] };
    else this.me = { sub: 'server', admin: true, topics: [], publish: ['**'] };
    this.live = mode === 'off' || !!token;
    this.server = this.me.admin || !!apiKey;
  }

  /** The topic whose state events keep the job list live. */
  get jobsTopic(): string {
    return this.me.admin ? 'jobs' : `user:${this.me.sub}`;
  }

  private headers(server: boolean): Headers {
    const h = new Headers();
    const { token, apiKey } = this.mode === 'jwt' ? this.creds : {};
    if (apiKey && (server || !token)) h.set('x-api-key', apiKey);
    else if (token) h.set('authorization', 'Bearer ' + token);
    return h;
  }

  /**
   * A JSON request to the gateway; `server` for the server API (the API key
   * when there is one, else the token). Throws `RelayError`.
   */
  async request<T>(method: string, path: string, body?: unknown, server = false): Promise<T> {
    const h = this.headers(server);
    if (body !== undefined) h.set('content-type', 'application/json');
    let res: Response;
    try {
      res = await fetch(path, { method, headers: h, ...(body !== undefined && { body: JSON.stringify(body) }) });
    } catch (e) {
      throw new RelayError('NETWORK', `the gateway did not answer: ${String(e)}`, true);
    }
    if (!res.ok) throw await toError(res);
    return res.status === 204 ? (undefined as T) : res.json();
  }

  /** A download of a path needing the credentials: a link where a token can ride in the URL, else fetched. */
  async download(path: string, name: string): Promise<void> {
    const res = await fetch(path, { headers: this.headers(false) });
    if (!res.ok) throw await toError(res);
    const url = URL.createObjectURL(await res.blob());
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }

  /** The URL of a download link that carries its own credentials, or null when the file must be fetched. */
  linkFor(path: string): string | null {
    if (this.mode === 'off') return path;
    const t = this.creds.token;
    return t ? `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(t)}` : null;
  }

  close(): void {
    this.client.close();
  }
}
