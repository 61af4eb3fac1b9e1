import type { Core, Pub, Topic, Transport } from './core.js';
import { RelayError } from './util.js';

/** The part of the standard `WebSocket` the client uses (the `ws` package's class fits). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/**
 * `GET /v1/ws`: one socket. Subscriptions and publishes go out as frames;
 * a dead socket is found by application pings and a read deadline (a
 * browser cannot see the server's WebSocket pings).
 */
export class WsTransport implements Transport {
  readonly kind = 'websocket';
  private ws?: WebSocketLike;
  private n = 0;
  /** Replies awaited, by request id. */
  private reqs = new Map<number, [(frame: any) => void, (() => void)?]>();
  private timer?: ReturnType<typeof setTimeout>;
  private last = Date.now();
  private open = false;
  private done = false;

  constructor(private c: Core) {
    void this.start();
  }

  private async start(): Promise<void> {
    const c = this.c;
    const Ctor = c.o.WebSocket ?? (globalThis as any).WebSocket;
    let token: string | undefined;
    try {
      if (!Ctor) throw new RelayError('NO_WEBSOCKET', 'no WebSocket: pass options.WebSocket');
      token = await c.token();
    } catch (e) {
      return this.end(0, String((e as Error).message ?? e));
    }
    if (this.done) return;
    const url = c.base.replace(/^http/, 'ws') + '/v1/ws' + (token ? '?token=' + encodeURIComponent(token) : '');
    let ws: WebSocketLike;
    try {
      ws = new Ctor(url);
    } catch (e) {
      return this.end(0, String(e));
    }
    this.ws = ws;
    // Until `welcome`, the deadline is the connect timeout.
    this.timer = setTimeout(() => this.kill('connect timeout'), c.o.connectTimeoutMs ?? 10_000);
    ws.onmessage = (e) => this.frame(e.data);
    ws.onclose = (e) => this.end(e.code, e.reason);
    ws.onerror = () => {};
  }

  private frame(data: unknown): void {
    this.last = Date.now();
    if (typeof data !== 'string') return;
    let f: any;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    const c = this.c;
    switch (f.op) {
      case 'event':
        return c.event(f);
      case 'welcome':
        clearTimeout(this.timer);
        this.heartbeat(Math.max(1000, +f.heartbeat_ms || 25_000));
        this.open = true;
        return c.opened(this);
      case 'subscribed':
        if (f.id != null) this.reqs.delete(f.id);
        return c.subscribed(f.topic, f);
      case 'ack':
      case 'error': {
        const reply = this.reqs.get(f.id);
        this.reqs.delete(f.id);
        if (reply) reply[0](f);
        else if (f.op === 'error') c.fail(new RelayError(f.code, f.message, f.retryable));
      }
    }
  }

  /**
   * Every half interval: ping when nothing came for half an interval; give
   * up when nothing came for one and a half, so a dead socket is found
   * within two intervals of its last frame.
   */
  private heartbeat(ms: number): void {
    const tick = () => {
      const silent = Date.now() - this.last;
      if (silent > ms * 1.5) return this.kill('no answer for two heartbeats');
      if (silent >= ms / 2) this.send({ op: 'ping' });
      this.timer = setTimeout(tick, ms / 2);
    };
    this.timer = setTimeout(tick, ms / 2);
  }

  private send(frame: object): boolean {
    if (this.ws?.readyState !== 1) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  sub(t: Topic): void {
    const id = ++this.n;
    this.reqs.set(id, [(f) => this.c.subError(t, f)]);
    const since = t.id ?? t.since;
    this.send({
      op: 'subscribe',
      id,
      topic: t.name,
      ...(since !== undefined && { since }),
      ...(since !== undefined && t.epoch && { epoch: t.epoch }),
    });
  }

  unsub(name: string): void {
    this.send({ op: 'unsubscribe', id: ++this.n, topic: name });
  }

  publish(p: Pub): void {
    const id = ++this.n;
    this.reqs.set(id, [
      (f) => (f.op === 'ack' ? p.ok({ event_id: f.event_id }) : p.err(new RelayError(f.code, f.message, f.retryable))),
      () => p.err(new RelayError('UNCONFIRMED', 'the connection closed before the publish was acknowledged', true)),
    ]);
    if (!this.send({ op: 'publish', id, topic: p.topic, type: p.type, data: p.data })) this.kill('send failed');
  }

  /** Gives up on the socket now (a dead TCP connection may take minutes to report its close). */
  private kill(why: string): void {
    try {
      this.ws?.close(4999, why.slice(0, 100));
    } catch {
      /* already closing */
    }
    this.end(0, why);
  }

  close(): void {
    this.done = true;
    clearTimeout(this.timer);
    this.lose();
    try {
      this.ws?.close(1000);
    } catch {
      /* already closing */
    }
  }

  private lose(): void {
    for (const [, lost] of this.reqs.values()) lost?.();
    this.reqs.clear();
  }

  private end(code: number, reason: string): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.onmessage = this.ws.onclose = null;
    this.lose();
    this.c.closed(this, { code, reason, wasOpen: this.open });
  }
}
