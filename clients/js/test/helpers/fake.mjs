// A fake WebSocket server for unit tests: each `new WebSocket(url)` the
// client makes is recorded; the test opens it, sends frames and closes it.
export class FakeServer {
  sockets = [];

  constructor() {
    const server = this;
    this.WebSocket = class FakeSocket {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        this.sent = [];
        this.closedWith = undefined;
        this.onopen = this.onmessage = this.onclose = this.onerror = null;
        server.sockets.push(this);
      }
      send(data) {
        if (this.readyState !== 1) throw new Error('not open');
        this.sent.push(JSON.parse(data));
      }
      close(code = 1000) {
        this.closedWith = code;
        this.readyState = 3;
      }
      // ---- what the test does ----
      /** Opens the socket and says welcome. */
      welcome(heartbeat_ms = 25000) {
        this.readyState = 1;
        this.onopen?.({});
        this.frame({ op: 'welcome', session: 'c-1', heartbeat_ms });
      }
      frame(f) {
        this.onmessage?.({ data: typeof f === 'string' ? f : JSON.stringify(f) });
      }
      drop(code = 1006, reason = '') {
        this.readyState = 3;
        this.onclose?.({ code, reason });
      }
      /** Frames of one op the client sent. */
      ops(op) {
        return this.sent.filter((f) => f.op === op);
      }
      /** Answers every subscribe not answered yet. */
      ackSubscribes({ position = '0-0', epoch = 'e1', recovered = true } = {}) {
        for (const f of this.ops('subscribe')) {
          if (f.answered) continue;
          f.answered = true;
          this.frame({ op: 'subscribed', id: f.id, topic: f.topic, position, epoch, recovered, replayed: 0 });
        }
      }
      event(topic, id, type = 't', data = {}) {
        this.frame({ op: 'event', topic, id, type, data, ts: Number(id.split('-')[0]) });
      }
    };
  }

  get last() {
    return this.sockets[this.sockets.length - 1];
  }
}

/** Lets pending promise callbacks and microtasks run (timers stay mocked). */
export const flush = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

/** A `fetch` answering from a handler `(url, init) => {status, body}` and recording calls. */
export function fakeFetch(handler) {
  const calls = [];
  const f = async (url, init = {}) => {
    calls.push({ url: String(url), init });
    const r = await handler(String(url), init);
    if (r instanceof Response) return r;
    return new Response(r.body === undefined ? null : JSON.stringify(r.body), {
      status: r.status ?? 200,
      headers: { 'content-type': 'application/json' },
    });
  };
  f.calls = calls;
  return f;
}

/** An unsigned JWT-shaped token with these claims (the client only reads `exp`). */
export function token(claims) {
  const b = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b({ alg: 'HS256' })}.${b(claims)}.sig`;
}
