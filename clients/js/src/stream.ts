import type { Core, Topic, Transport } from './core.js';
import { RelayError, decodeCursor, encodeCursor, sinceId } from './util.js';
import type { Position, RelayEvent } from './types.js';

/** How long an SSE stream may stay silent (the gateway comments every 15 s). */
const SSE_SILENCE_MS = 45_000;

/**
 * `GET /v1/sse` (over `fetch`, so the token goes in a header and the same
 * code runs in Node) or `GET /v1/poll`: a request over all the client's
 * topics, started again whenever the set of topics changes.
 *
 * Positions are the client's, per topic: each request's cursor is built
 * from them and each answer's cursor is read back into them, so a switch
 * between WebSocket, SSE and long-polling resumes exactly where the last
 * transport stopped.
 */
export class StreamTransport implements Transport {
  private gen = 0;
  private ctl?: AbortController;
  private open = false;
  private done = false;
  private pending = false;

  constructor(
    private c: Core,
    readonly kind: 'sse' | 'poll',
  ) {
    this.restart();
  }

  sub(): void {
    this.restart();
  }

  unsub(): void {
    this.restart();
  }

  close(): void {
    this.done = true;
    this.ctl?.abort();
  }

  /** Starts the request again with the current topics (several changes in one tick make one restart). */
  private restart(): void {
    if (this.pending) return;
    this.pending = true;
    queueMicrotask(() => {
      this.pending = false;
      if (this.done) return;
      this.ctl?.abort();
      const gen = ++this.gen;
      const ctl = (this.ctl = new AbortController());
      this.run(gen, ctl).catch((e) => {
        if (gen !== this.gen || this.done) return;
        if (e?.code === 'RESTART') return this.restart();
        this.done = true;
        ctl.abort();
        const status = e instanceof RelayError ? e.status : undefined;
        this.c.closed(this, { code: status === 401 ? 4001 : 0, reason: String(e?.message ?? e), wasOpen: this.open, error: e });
      });
    });
  }

  private opened(): void {
    if (!this.open) {
      this.open = true;
      this.c.opened(this);
    }
  }

  private async run(gen: number, ctl: AbortController): Promise<void> {
    const c = this.c;
    const live = () => gen === this.gen && !this.done;
    let topics = c.active();
    if (!topics.length) return this.opened();
    if (this.kind === 'sse') {
      // An SSE stream names no position until its first event: fix one for
      // every new topic first, so nothing published meanwhile is missed.
      const fresh = topics.filter((t) => t.id === undefined && t.since === undefined);
      if (fresh.length) await this.poll(fresh, 0, ctl, live);
      if (!live()) return;
      topics = c.active();
      const res = await this.get('/v1/sse', topics, '', ctl);
      this.opened();
      await this.sse(res, topics, ctl, live);
      throw new RelayError('NETWORK', 'the event stream ended', true);
    }
    let wait = 0;
    while (live()) {
      await this.poll(c.active(), wait, ctl, live);
      this.opened();
      wait = c.o.pollWaitS ?? 25;
    }
  }

  /** One poll: events after the topics' positions, waiting up to `wait` seconds. */
  private async poll(topics: Topic[], wait: number, ctl: AbortController, live: () => boolean): Promise<void> {
    const res = await this.get('/v1/poll', topics, `&wait=${wait}`, ctl, (wait + 15) * 1000);
    const body = await res.json();
    if (!live()) return;
    if (!body.recovered) this.c.reset(topics);
    for (const ev of body.events as RelayEvent[]) this.c.event(ev);
    this.positions(body.cursor);
  }

  private positions(cursor: string): void {
    const p = decodeCursor(cursor);
    if (p) this.c.positions(p);
  }

  private async get(
    path: string,
    topics: Topic[],
    extra: string,
    ctl: AbortController,
    timeoutMs?: number,
  ): Promise<Response> {
    const pos: [string, Position][] = [];
    for (const t of topics) {
      const id = t.id ?? (t.since !== undefined ? sinceId(t.since) : undefined);
      if (id) pos.push([t.name, { id, epoch: t.epoch ?? '' }]);
    }
    const q = `?topics=${topics.map((t) => encodeURIComponent(t.name)).join(',')}${pos.length ? '&cursor=' + encodeCursor(pos) : ''}${extra}`;
    const timer = timeoutMs ? setTimeout(() => ctl.abort(), timeoutMs) : undefined;
    try {
      const res = await this.c.fetch(path + q, { signal: ctl.signal });
      if (res.status === 400 || res.status === 403 || res.status === 404) {
        // One topic the caller may not read fails the whole request: find
        // which, tell its subscribers, and go on with the others.
        const err = await this.c.toError(res);
        if (await this.c.refuse(topics, err)) throw new RelayError('RESTART', 'topics refused', true);
        throw err;
      }
      if (!res.ok) throw await this.c.toError(res);
      return res;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads a `text/event-stream` body until it ends or stays silent too long. */
  private async sse(res: Response, topics: Topic[], ctl: AbortController, live: () => boolean): Promise<void> {
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let ev = { id: '', event: '', data: '' };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => ctl.abort(), SSE_SILENCE_MS);
    };
    try {
      for (;;) {
        arm();
        const { value, done } = await reader.read();
        if (done || !live()) return;
        buf += dec.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
          if (line === '') {
            this.dispatch(ev, topics);
            ev = { id: '', event: '', data: '' };
            continue;
          }
          const colon = line.indexOf(':');
          if (colon === 0) continue;
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1));
          if (field === 'data') ev.data += (ev.data ? '\n' : '') + value;
          else if (field === 'id' || field === 'event') ev[field] = value;
        }
      }
    } finally {
      clearTimeout(timer);
      reader.cancel().catch(() => {});
    }
  }

  private dispatch(ev: { id: string; event: string; data: string }, topics: Topic[]): void {
    if (ev.event === 'reset') return this.c.reset(topics);
    if (ev.event === 'expired') throw new RelayError('TOKEN_EXPIRED', 'token expired', true, 401);
    if (!ev.data) return;
    this.c.event(JSON.parse(ev.data));
    if (ev.id) this.positions(ev.id);
  }
}
