import { Jobs } from './jobs.js';
import { StreamTransport } from './stream.js';
import type { Position, RelayEvent } from './types.js';
import { Emitter, RelayError, backoff, cmpId, tokenExp, type BackoffOptions } from './util.js';
import { WsTransport, type WebSocketConstructor } from './ws.js';

export type TransportKind = 'websocket' | 'sse' | 'poll';

/**
 * `idle`: nothing to do yet; `connecting`; `connected`; `disconnected`:
 * waiting to try again (or, after an expired static token, for `setToken`);
 * `closed`: `close()` was called.
 */
export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface StateChange {
  state: ConnectionState;
  /** The transport in use or being tried; `null` when disconnected. */
  transport: TransportKind | null;
  /** When disconnected: how long until the next attempt, in ms. */
  retryInMs?: number;
  /** When disconnected: why. */
  error?: RelayError;
  /** When disconnected: the WebSocket close code, if the server sent one. */
  closeCode?: number;
  /** When disconnected: the close reason, or what the client saw. */
  reason?: string;
}

/** Where positions are kept across page loads: `localStorage` and `sessionStorage` fit. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface RelayClientOptions {
  /** The gateway's base URL (`https://relay.example.com`); default: the page's origin. */
  url?: string;
  /** A fixed token (JWT). */
  token?: string;
  /** Gives a fresh token: called at start, before the current one expires, and on close code 4001 or HTTP 401. */
  getToken?: () => string | Promise<string>;
  /** A server API key (`X-Api-Key`), for backends calling the job and publish API. */
  apiKey?: string;
  /** The WebSocket class where there is no global one (Node 20: the `ws` package's). */
  WebSocket?: WebSocketConstructor;
  /** `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
  /** Transports in order of preference (default `['websocket', 'sse', 'poll']`). */
  transports?: TransportKind[];
  /** Reconnect backoff (default: first delay up to 500 ms, doubling, at most 30 s). */
  reconnect?: BackoffOptions;
  /** Failed attempts in a row before the next transport is tried (default 2). */
  fallbackAfter?: number;
  /** While on SSE or long-polling, how often WebSocket is tried again, in ms (default 60000). */
  upgradeRetryMs?: number;
  /** How long a WebSocket may take to say `welcome`, in ms (default 10000). */
  connectTimeoutMs?: number;
  /** Seconds a long-poll waits on the server (default 25, at most 30). */
  pollWaitS?: number;
  /** Keeps each topic's position so that a reloaded page resumes too. */
  storage?: StorageLike;
  /** Prefix of the storage keys (default `relay:`). */
  storagePrefix?: string;
  /** Publishes held while offline, at most (default 100). */
  maxQueue?: number;
  /** Largest frame the gateway takes (`RELAY_MAX_FRAME_BYTES`, default 65536); larger publishes fail at once. */
  maxFrameBytes?: number;
}

export interface SubscribeOptions<D = any> {
  /** Each event, once, in order. */
  onEvent(event: RelayEvent<D>): void;
  /**
   * The server could not vouch for every event since the last position
   * (history trimmed or lost): reload the state, then go on with the events
   * that follow.
   */
  onReset?(info: { topic: string; position?: Position }): void;
  /** The subscription was refused (`FORBIDDEN`, `BAD_TOPIC`, ...) and has ended. */
  onError?(error: RelayError): void;
  /** Start after this event id, or after this millisecond timestamp; default: from now (or from the stored position). */
  since?: string;
  /** The epoch that goes with `since`. */
  epoch?: string;
}

export interface Subscription {
  readonly topic: string;
  /** The last event id delivered (or the starting point) and its epoch. */
  readonly position: Position | undefined;
  unsubscribe(): void;
}

export interface PublishResult {
  event_id: string;
}

/** @internal */
export interface Topic {
  name: string;
  id?: string;
  epoch?: string;
  /** A millisecond timestamp to start after, until there is an id. */
  since?: string;
  /** After a reset: take the next event whatever its id (a new epoch may count again). */
  loose?: boolean;
  tries: number;
  subs: Set<SubscribeOptions>;
}

/** @internal */
export interface Pub {
  topic: string;
  type: string;
  data: unknown;
  ok(r: PublishResult): void;
  err(e: RelayError): void;
}

/** @internal */
export interface Transport {
  readonly kind: TransportKind;
  sub(t: Topic): void;
  unsub(name: string): void;
  close(): void;
}

/** @internal */
export interface CloseInfo {
  code: number;
  reason: string;
  wasOpen: boolean;
  error?: RelayError;
}

/** @internal */
export type Core = RelayClient;

/** A connection that stayed up this long resets the backoff. */
const STABLE_MS = 5000;

const call = <A>(fn: ((a: A) => void) | undefined, a: A) => {
  try {
    fn?.(a);
  } catch (e) {
    setTimeout(() => {
      throw e;
    });
  }
};

/**
 * A connection to Relay: subscriptions that never lose an event (across
 * reconnects, gateways and transports), publishing with an offline queue,
 * and jobs.
 */
export class RelayClient extends Emitter<{
  state: (change: StateChange) => void;
  error: (error: RelayError) => void;
}> {
  /** The job API. */
  readonly jobs: Jobs;
  state: ConnectionState = 'idle';
  transport: TransportKind | null = null;
  /** @internal */ readonly base: string;
  private topics = new Map<string, Topic>();
  private t?: Transport;
  private probe?: WsTransport;
  private kinds: TransportKind[];
  private ki = 0;
  private failures = 0;
  private kindFailures = 0;
  private openedAt = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private probeTimer?: ReturnType<typeof setTimeout>;
  private queue: Pub[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private tok?: string;
  private tokP?: Promise<string | undefined>;
  private wake = () => {
    if (this.timer) {
      clearTimeout(this.timer);
      this.open();
    }
  };

  constructor(/** @internal */ readonly o: RelayClientOptions = {}) {
    super();
    this.base = (o.url ?? (globalThis as any).location?.origin ?? '').replace(/\/+$/, '');
    this.kinds = o.transports?.length ? o.transports : ['websocket', 'sse', 'poll'];
    this.tok = o.token;
    this.jobs = new Jobs(this);
  }

  /** Opens the connection (subscribe and publish do it by themselves). */
  connect(): void {
    if (this.state === 'closed') this.state = 'idle';
    if (this.t || this.timer) return;
    (globalThis as any).addEventListener?.('online', this.wake);
    this.open();
  }

  /** Closes everything; queued publishes fail with `CLOSED`. `connect()` starts again. */
  close(): void {
    clearTimeout(this.timer);
    clearTimeout(this.probeTimer);
    this.timer = undefined;
    (globalThis as any).removeEventListener?.('online', this.wake);
    const t = this.t;
    this.t = undefined;
    t?.close();
    this.probe?.close();
    this.probe = undefined;
    for (const p of this.queue.splice(0)) p.err(new RelayError('CLOSED', 'the client was closed'));
    this.set('closed', null);
  }

  /** Replaces the token (for example after an expired one stopped the connection). */
  setToken(token: string): void {
    this.tok = token;
    if (this.state === 'disconnected' && !this.timer && !this.t) this.connect();
  }

  /**
   * Subscribes to a topic. Events come once each, in order, across
   * reconnects and transport changes. Subscribing again to a topic already
   * subscribed adds a listener from the current position (`since` is then
   * refused).
   */
  subscribe<D = any>(topic: string, opts: SubscribeOptions<D>): Subscription {
    let t = this.topics.get(topic);
    if (t && opts.since !== undefined) throw new RelayError('ALREADY_SUBSCRIBED', `already subscribed to ${topic}; since applies to a first subscription`);
    if (!t) {
      t = { name: topic, subs: new Set(), tries: 0 };
      const stored = opts.since === undefined ? this.load(topic) : undefined;
      if (stored) Object.assign(t, stored);
      else if (opts.since !== undefined) {
        if (opts.since.includes('-')) t.id = opts.since;
        else t.since = opts.since;
        t.epoch = opts.epoch;
      }
      this.topics.set(topic, t);
      if (this.t && (this.state === 'connected' || !(this.t instanceof WsTransport))) this.t.sub(t);
    }
    t.subs.add(opts);
    this.connect();
    const tt = t;
    return {
      topic,
      get position() {
        return tt.id === undefined ? undefined : { id: tt.id, epoch: tt.epoch ?? '' };
      },
      unsubscribe: () => {
        if (!tt.subs.delete(opts) || tt.subs.size || this.topics.get(topic) !== tt) return;
        this.topics.delete(topic);
        this.o.storage?.removeItem(this.key(topic));
        if (this.t && this.state === 'connected') this.t.unsub(topic);
      },
    };
  }

  /**
   * Publishes an event: over the WebSocket, else `POST /v1/send`; held
   * (at most `maxQueue`) while offline and sent on reconnect. Resolves with
   * the event id; rejects with the server's error, `QUEUE_FULL`, `TOO_LARGE`,
   * `CLOSED`, or `UNCONFIRMED` (the connection dropped after sending: it
   * may or may not have been published, and is not sent twice).
   */
  publish(topic: string, type: string, data: unknown = {}): Promise<PublishResult> {
    return new Promise((ok, err) => {
      const p: Pub = { topic, type, data, ok, err };
      const size = new TextEncoder().encode(JSON.stringify({ op: 'publish', id: 0, topic, type, data })).length;
      if (this.state === 'closed') err(new RelayError('CLOSED', 'the client was closed'));
      else if (size > (this.o.maxFrameBytes ?? 65536)) err(new RelayError('TOO_LARGE', `the event is ${size} bytes, over the frame limit`));
      else if (this.t && this.state === 'connected') this.send(p);
      else if (this.queue.length >= (this.o.maxQueue ?? 100)) err(new RelayError('QUEUE_FULL', 'too many publishes waiting for a connection', true));
      else {
        this.queue.push(p);
        this.connect();
      }
    });
  }

  private send(p: Pub): void {
    if (this.t instanceof WsTransport) return this.t.publish(p);
    this.chain = this.chain.then(() =>
      this.json<PublishResult>('POST', '/v1/send', { topic: p.topic, type: p.type, data: p.data }).then(p.ok, (e: RelayError) =>
        p.err(e.code === 'NETWORK' ? new RelayError('UNCONFIRMED', e.message, true) : e),
      ),
    );
  }

  private open(): void {
    this.timer = undefined;
    const kind = this.kinds[this.ki]!;
    this.t = kind === 'websocket' ? new WsTransport(this) : new StreamTransport(this, kind);
    this.set('connecting', kind);
  }

  private set(state: ConnectionState, transport: TransportKind | null, extra?: Partial<StateChange>): void {
    this.state = state;
    this.transport = transport;
    this.emit('state', { state, transport, ...extra });
  }

  private key(topic: string): string {
    return (this.o.storagePrefix ?? 'relay:') + topic;
  }

  private load(topic: string): Pick<Topic, 'id' | 'epoch'> | undefined {
    try {
      const v = JSON.parse(this.o.storage?.getItem(this.key(topic)) ?? 'null');
      return typeof v?.id === 'string' ? { id: v.id, epoch: typeof v.epoch === 'string' ? v.epoch : undefined } : undefined;
    } catch {
      return undefined;
    }
  }

  private save(t: Topic): void {
    if (this.o.storage && t.id !== undefined) this.o.storage.setItem(this.key(t.name), JSON.stringify({ id: t.id, epoch: t.epoch }));
  }

  private scheduleProbe(): void {
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => {
      if (this.t && this.t.kind !== 'websocket' && !this.probe) this.probe = new WsTransport(this);
    }, this.o.upgradeRetryMs ?? 60_000);
  }

  // ----- called by the transports -----

  /** @internal The token to use now (a fresh one from `getToken` when forced or about to expire). */
  token(force = false): Promise<string | undefined> {
    const g = this.o.getToken;
    const exp = this.tok && tokenExp(this.tok);
    if (!g || (!force && this.tok && !(exp && exp * 1000 - Date.now() < 10_000))) return Promise.resolve(this.tok);
    return (this.tokP ??= Promise.resolve()
      .then(g)
      .then(
        (t) => (this.tok = t),
        (e) => {
          throw new RelayError('TOKEN', `getToken failed: ${e?.message ?? e}`, true);
        },
      )
      .finally(() => (this.tokP = undefined)));
  }

  /** @internal `fetch` of a gateway path with the credentials; a 401 gets one try with a fresh token. */
  async fetch(path: string, init: RequestInit = {}, retry = true): Promise<Response> {
    const h = new Headers(init.headers);
    const token = await this.token();
    if (token) h.set('authorization', 'Bearer ' + token);
    if (this.o.apiKey) h.set('x-api-key', this.o.apiKey);
    let res: Response;
    try {
      res = await (this.o.fetch ?? fetch)(this.base + path, { ...init, headers: h });
    } catch (e: any) {
      throw new RelayError(init.signal?.aborted ? 'ABORTED' : 'NETWORK', String(e?.message ?? e), true);
    }
    if (res.status === 401 && retry && this.o.getToken) {
      await this.token(true);
      return this.fetch(path, init, false);
    }
    return res;
  }

  /** @internal The contract's error body of a failed answer as a `RelayError`. */
  async toError(res: Response): Promise<RelayError> {
    const e = (await res.json().catch(() => null))?.error;
    return new RelayError(e?.code ?? `HTTP_${res.status}`, e?.message ?? `HTTP ${res.status}`, res.status === 429 || res.status >= 500, res.status);
  }

  /** @internal A JSON request; throws `RelayError` on an error answer. */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.fetch(
      path,
      body === undefined ? { method } : { method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } },
    );
    if (!res.ok) throw await this.toError(res);
    return res.status === 204 ? (undefined as T) : res.json();
  }

  /** @internal */
  active(): Topic[] {
    return [...this.topics.values()];
  }

  /** @internal */
  opened(t: Transport): void {
    if (t === this.probe) {
      // WebSocket works again: leave the fallback; positions carry over.
      const old = this.t;
      this.probe = undefined;
      this.t = t;
      this.ki = this.kinds.indexOf('websocket');
      old?.close();
    } else if (t !== this.t) return;
    this.kindFailures = 0;
    this.openedAt = Date.now();
    this.set('connected', t.kind);
    if (t instanceof WsTransport) for (const topic of this.topics.values()) t.sub(topic);
    else if (this.kinds.includes('websocket')) this.scheduleProbe();
    for (const p of this.queue.splice(0)) this.send(p);
  }

  /** @internal */
  closed(t: Transport, info: CloseInfo): void {
    if (t === this.probe) {
      this.probe = undefined;
      if (this.t) this.scheduleProbe();
      return;
    }
    if (t !== this.t) return;
    this.t = undefined;
    clearTimeout(this.probeTimer);
    this.probe?.close();
    this.probe = undefined;
    if (info.wasOpen && Date.now() - this.openedAt >= STABLE_MS) this.failures = 0;
    const r = this.o.reconnect;
    const code = info.code;
    let delay = backoff(this.failures, r);
    let error = info.error;
    if (code === 4000 || code === 4008) {
      // Draining, or too slow: resume at once (elsewhere), unless it keeps happening.
      if (!this.failures) delay = 0;
    } else if (code === 4001) {
      if (!this.o.getToken) {
        error = new RelayError('TOKEN_EXPIRED', 'the token expired; pass getToken, or call setToken', false, 4001);
        this.emit('error', error);
        return this.set('disconnected', null, { error });
      }
      this.tok = undefined;
      if (!this.failures) delay = 0;
    } else if (code === 1008 || code === 1009) {
      error = new RelayError(`CLOSE_${code}`, info.reason || (code === 1009 ? 'frame over the size limit' : 'policy violation'), true, code);
      this.emit('error', error);
      // Not spinning: a second at least, then the jittered fourth step or later.
      delay = 1000 + backoff(Math.max(this.failures, 3), r);
    }
    this.failures++;
    if (!info.wasOpen && ++this.kindFailures >= (this.o.fallbackAfter ?? 2) && this.kinds.length > 1) {
      this.ki = (this.ki + 1) % this.kinds.length;
      this.kindFailures = 0;
    }
    this.set('disconnected', null, { retryInMs: delay, reason: info.reason, ...(code && { closeCode: code }), ...(error && { error }) });
    this.timer = setTimeout(() => this.open(), delay);
  }

  /** @internal An error not tied to a request. */
  fail(e: RelayError): void {
    this.emit('error', e);
  }

  /** @internal */
  event(ev: RelayEvent): void {
    const t = this.topics.get(ev.topic);
    if (!t || typeof ev.id !== 'string') return;
    if (t.id !== undefined && !t.loose && cmpId(ev.id, t.id) <= 0) return;
    t.id = ev.id;
    t.since = undefined;
    t.loose = false;
    this.save(t);
    for (const s of [...t.subs]) call(s.onEvent, ev);
  }

  /** @internal A WebSocket `subscribed` (solicited, or the notice of a topic whose history was lost). */
  subscribed(name: string, f: { position: string; epoch: string; recovered: boolean }): void {
    const t = this.topics.get(name);
    if (!t) return;
    t.tries = 0;
    if (t.id === undefined && t.since === undefined) t.id = f.position;
    else if (!f.recovered) {
      // A new epoch counts its ids again: everything after its start is new.
      if (t.epoch && f.epoch !== t.epoch) t.id = '0-0';
      this.resetTopic(t);
    }
    t.epoch = f.epoch;
    this.save(t);
  }

  /** @internal SSE or poll said `recovered: false` for some of these topics (it cannot say which). */
  reset(topics: Topic[]): void {
    for (const t of topics) if (this.topics.get(t.name) === t && (t.id !== undefined || t.since !== undefined)) this.resetTopic(t);
  }

  private resetTopic(t: Topic): void {
    t.loose = true;
    for (const s of [...t.subs]) call(s.onReset, { topic: t.name, ...(t.id !== undefined && { position: { id: t.id, epoch: t.epoch ?? '' } }) });
  }

  /** @internal Positions read from an SSE or poll cursor. */
  positions(map: Map<string, Position>): void {
    for (const [name, p] of map) {
      const t = this.topics.get(name);
      if (!t) continue;
      if ((t.epoch !== undefined && p.epoch !== t.epoch) || t.id === undefined || cmpId(p.id, t.id) > 0) {
        t.id = p.id;
        t.since = undefined;
      }
      t.epoch = p.epoch;
      this.save(t);
    }
  }

  /** @internal A WebSocket subscribe was refused: retry a retryable refusal, else end the subscription. */
  subError(t: Topic, f: { code: string; message: string; retryable?: boolean }): void {
    const e = new RelayError(f.code, f.message, !!f.retryable);
    if (this.topics.get(t.name) !== t) return;
    if (!e.retryable) return this.drop(t, e);
    const ws = this.t;
    setTimeout(() => {
      if (this.t === ws && this.topics.get(t.name) === t) ws?.sub(t);
    }, backoff(++t.tries, this.o.reconnect));
  }

  private drop(t: Topic, e: RelayError): void {
    this.topics.delete(t.name);
    if (![...t.subs].some((s) => s.onError)) this.emit('error', e);
    for (const s of [...t.subs]) call(s.onError, e);
  }

  /** @internal A stream request was refused: find the topics refused alone, and end their subscriptions. */
  async refuse(topics: Topic[], err: RelayError): Promise<boolean> {
    if (topics.length === 1) {
      this.drop(topics[0]!, err);
      return true;
    }
    let any = false;
    for (const t of topics) {
      const res = await this.fetch(`/v1/poll?topics=${encodeURIComponent(t.name)}`);
      if (res.status === 400 || res.status === 403 || res.status === 404) {
        this.drop(t, await this.toError(res));
        any = true;
      }
    }
    return any;
  }
}
