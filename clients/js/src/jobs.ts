import type { RelayClient, Subscription } from './core.js';
import type { Accepted, JobList, JobProgress, JobRecord, JobState, RelayEvent, SubmitOptions, Uploaded } from './types.js';
import { RelayError, cmpId } from './util.js';

/** Log lines a watch keeps (the latest). */
const MAX_LOGS = 1000;
/** Transcript pages read at most when a watch reloads. */
const MAX_PAGES = 200;

const enc = encodeURIComponent;
const ended = (s: JobState | null) => s === 'completed' || s === 'failed' || s === 'cancelled';

export interface JobLog {
  /** The event's id. */
  id: string;
  ts: number;
  level: string;
  message: string;
  [field: string]: unknown;
}

/** One job as it stands now; a new object after every change. */
export interface JobView {
  id: string;
  kind: string | null;
  /** `null` until known. */
  state: JobState | null;
  progress: JobProgress | null;
  /** The latest log lines (at most 1000), oldest first. */
  logs: JobLog[];
  /** The joined `job.chunk` texts of the latest attempt. */
  text: string;
  result: unknown;
  /** The failure, or the reason of a cancellation. */
  error: string | null;
  attempts: number;
  /** The record as last read. */
  record: JobRecord | null;
  /** The job has ended and its final record was read. */
  done: boolean;
}

export interface UploadOptions {
  filename?: string;
  contentType?: string;
  /** Bytes of the file sent so far (browsers: XMLHttpRequest progress; Node: bytes handed to the socket). */
  onProgress?(sent: number, total: number): void;
}

/**
 * One job kept up to date from its topic (`job:{id}`, from its first
 * event): state, progress, logs, streamed text, result. When the server
 * cannot vouch for the events (history trimmed or lost), it reads the
 * job's transcript (`GET /v1/jobs/{id}/events`) or, without one, its
 * record, and goes on.
 */
export class JobWatch {
  view: JobView;
  /** Resolves with the final view once the job has ended; rejects when the job cannot be read (`NOT_FOUND`). */
  readonly done: Promise<JobView>;
  /** @internal */ refs = 1;
  private l = new Set<(v: JobView) => void>();
  private sub?: Subscription;
  private resolve!: (v: JobView) => void;
  private reject!: (e: RelayError) => void;
  /** Next chunk `seq` expected; -1 when unknown (text taken from a record). */
  private seq = 0;
  private early = new Map<number, string>();
  /** Attempt as told by the events (a new one starts the text again). */
  private att = 0;
  private last = '';
  private held?: RelayEvent[];
  private finishing = false;
  private stopped = false;

  constructor(
    private c: RelayClient,
    readonly id: string,
    private forget: () => void,
  ) {
    this.view = { id, kind: null, state: null, progress: null, logs: [], text: '', result: null, error: null, attempts: 0, record: null, done: false };
    this.done = new Promise((ok, err) => ((this.resolve = ok), (this.reject = err)));
    this.done.catch(() => {});
    const topic = `job:${id}`;
    const opts = {
      onEvent: (ev: RelayEvent) => (this.held ? this.held.push(ev) : this.change(() => this.apply(ev))),
      onReset: () => void this.reload(),
      onError: (e: RelayError) => this.change(() => (this.view.error = e.message)),
    };
    try {
      this.sub = c.subscribe(topic, { ...opts, since: '0-0' });
    } catch {
      this.sub = c.subscribe(topic, opts);
    }
    // A job that has already ended is read whole at once (its topic's
    // history may be gone); a running one is followed from its events.
    c.jobs.get(id).then(
      (r) => (ended(r.state) ? void this.reload() : this.change(() => this.record(r, false))),
      (e: RelayError) => {
        this.change(() => (this.view.error = e.message));
        if (!e.retryable) {
          this.stop();
          this.reject(e);
        }
      },
    );
  }

  /** Calls `fn` with the view after every change; returns the function that stops it. */
  onChange(fn: (view: JobView) => void): () => void {
    this.l.add(fn);
    return () => void this.l.delete(fn);
  }

  /** Stops watching (when every `watch` of this job has closed). */
  close(): void {
    if (--this.refs > 0) return;
    this.stop();
    this.forget();
  }

  private stop(): void {
    this.stopped = true;
    this.sub?.unsubscribe();
  }

  /** Applies `fn` to a copy of the view, then publishes it (and finishes an ended job). */
  private change(fn: () => void): void {
    if (this.stopped && this.view.done) return;
    this.view = { ...this.view };
    fn();
    for (const f of [...this.l]) f(this.view);
    if (ended(this.view.state) && !this.view.done) void this.finish();
  }

  private apply(ev: RelayEvent): void {
    if (this.last && cmpId(ev.id, this.last) <= 0) return;
    this.last = ev.id;
    const v = this.view;
    const d = ev.data ?? {};
    const end = ended(v.state);
    switch (ev.type) {
      case 'job.queued':
      case 'job.retrying':
        if (!end) v.state = 'queued';
        break;
      case 'job.started':
        if (!end) v.state = 'running';
        if (d.attempt > this.att) {
          if (this.att) this.text('', 0);
          this.att = d.attempt;
          v.attempts = Math.max(v.attempts, d.attempt);
        }
        break;
      case 'job.progress':
        v.progress = d;
        break;
      case 'job.log':
        v.logs = [...v.logs, { ...d, id: ev.id, ts: ev.ts }].slice(-MAX_LOGS);
        break;
      case 'job.chunk':
        this.chunk(d.seq, String(d.text ?? ''));
        break;
      case 'job.completed':
        v.state = 'completed';
        v.result = d.result;
        break;
      case 'job.failed':
        v.state = 'failed';
        v.error = d.error ?? null;
        break;
      case 'job.cancelled':
        v.state = 'cancelled';
        v.error = d.reason ?? 'cancelled';
    }
  }

  private text(t: string, seq: number): void {
    this.view.text = t;
    this.seq = seq;
    this.early.clear();
  }

  private chunk(seq: unknown, t: string): void {
    const v = this.view;
    if (typeof seq !== 'number' || this.seq < 0) {
      v.text += t;
      return;
    }
    if (seq < this.seq) return;
    if (seq > this.seq) {
      this.early.set(seq, t);
      return;
    }
    v.text += t;
    this.seq++;
    for (let next; (next = this.early.get(this.seq)) !== undefined; this.seq++) {
      this.early.delete(this.seq);
      v.text += next;
    }
  }

  /** Takes what a record says; `final` when it is the newest word (a reload, or the end). */
  private record(r: JobRecord, final: boolean): void {
    const v = this.view;
    v.record = r;
    v.kind = r.kind;
    v.attempts = Math.max(v.attempts, r.attempts);
    if (final || ended(r.state) || !v.state) v.state = r.state;
    if (final || !v.progress) v.progress = r.progress;
    if (final || ended(r.state)) {
      v.result = r.result;
      v.error = r.error ?? v.error;
    }
    if (final && typeof r.output === 'string') this.text(r.output, -1);
  }

  /** Rebuilds the view from the transcript, else the record, holding live events meanwhile. */
  private async reload(): Promise<void> {
    if (this.held) return;
    this.held = [];
    try {
      const events = await this.transcript();
      if (events) {
        this.change(() => {
          const r = this.view.record;
          Object.assign(this.view, { state: null, progress: null, logs: [], result: null, error: null });
          this.text('', 0);
          this.att = 0;
          this.last = '';
          for (const ev of events) this.apply(ev);
          if (r) this.view.record = r;
        });
      } else {
        const r = await this.c.jobs.get(this.id);
        this.change(() => {
          this.last = '';
          this.record(r, true);
        });
      }
    } catch (e: any) {
      this.change(() => (this.view.error = String(e?.message ?? e)));
    } finally {
      const held = this.held ?? [];
      this.held = undefined;
      this.change(() => held.forEach((ev) => this.apply(ev)));
    }
  }

  /** The job's whole transcript, or `null` where the server has none. */
  private async transcript(): Promise<RelayEvent[] | null> {
    const out: RelayEvent[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < MAX_PAGES; i++) {
      let page: { events: RelayEvent[]; next_cursor?: string | null };
      try {
        page = await this.c.jobs.events(this.id, { limit: 500, ...(cursor && { cursor }) });
      } catch {
        return null;
      }
      out.push(...page.events);
      if (!page.next_cursor || !page.events.length) break;
      cursor = page.next_cursor;
    }
    return out;
  }

  private async finish(): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    let r: JobRecord | undefined;
    try {
      r = await this.c.jobs.get(this.id);
    } catch {
      /* the events said enough */
    }
    this.stop();
    this.change(() => {
      if (r) this.record(r, true);
      this.view.done = true;
    });
    this.resolve(this.view);
  }
}

/** The job API: `/v1/jobs`, `/v1/uploads`, and live job objects. */
export class Jobs {
  private w = new Map<string, JobWatch>();

  constructor(private c: RelayClient) {}

  /** `POST /v1/jobs`: the job is recorded and will run at least once. */
  submit(kind: string, payload: unknown = {}, options: SubmitOptions = {}): Promise<Accepted> {
    return this.c.json('POST', '/v1/jobs', { kind, payload, ...options });
  }

  get(id: string): Promise<JobRecord> {
    return this.c.json('GET', `/v1/jobs/${enc(id)}`);
  }

  /** Newest first; a user sees only their own jobs. */
  list(query: { state?: JobState; kind?: string; limit?: number; cursor?: string } = {}): Promise<JobList> {
    const q = Object.entries(query)
      .filter(([, v]) => v !== undefined && v !== '')
      .map(([k, v]) => `${k}=${enc(String(v))}`)
      .join('&');
    return this.c.json('GET', `/v1/jobs${q && '?' + q}`);
  }

  /** Cancels a job (a running one is told to stop); rejects with `CONFLICT` when it had already ended. */
  cancel(id: string, reason?: string): Promise<JobRecord> {
    return this.c.json('POST', `/v1/jobs/${enc(id)}/cancel`, reason === undefined ? {} : { reason });
  }

  /** One page of the job's transcript (every event it published, in order). */
  events(id: string, page: { cursor?: string; limit?: number } = {}): Promise<{ events: RelayEvent[]; next_cursor: string | null }> {
    const q = `limit=${page.limit ?? 500}${page.cursor ? '&cursor=' + enc(page.cursor) : ''}`;
    return this.c.json('GET', `/v1/jobs/${enc(id)}/events?${q}`);
  }

  /** A live view of one job; every `watch(id)` of the same job shares one, until each has closed. */
  watch(id: string): JobWatch {
    let w = this.w.get(id);
    if (w) {
      w.refs++;
      return w;
    }
    w = new JobWatch(this.c, id, () => this.w.delete(id));
    this.w.set(id, w);
    return w;
  }

  /** `POST /v1/uploads`: stores one file a job payload can name by its `upload_id`. */
  async upload(file: Blob | ArrayBuffer | Uint8Array | string, opts: UploadOptions = {}): Promise<Uploaded> {
    const blob = file instanceof Blob ? file : new Blob([file as BlobPart]);
    const name = (opts.filename ?? ((file as any).name as string | undefined) ?? 'file').replace(/["\r\n]/g, '_');
    const type = opts.contentType ?? (blob.type || 'application/octet-stream');
    const progress = opts.onProgress;
    const XHR = (globalThis as any).XMLHttpRequest;
    if (progress && XHR && !this.c.o.fetch) return this.xhr(XHR, blob, name, type, progress);
    const boundary = 'relay' + Math.random().toString(36).slice(2);
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: ${type}\r\n\r\n`;
    const tail = `\r\n--${boundary}--\r\n`;
    const total = blob.size;
    let body: BodyInit = new Blob([head, blob, tail]);
    if (progress) {
      const te = new TextEncoder();
      const reader = blob.stream().getReader();
      let sent = 0;
      let stage = 0;
      body = new ReadableStream<Uint8Array>({
        async pull(ctl) {
          if (stage === 0) {
            stage = 1;
            return ctl.enqueue(te.encode(head));
          }
          if (stage === 1) {
            const { value, done } = await reader.read();
            if (!done) {
              sent += value.byteLength;
              progress(sent, total);
              return ctl.enqueue(value);
            }
            stage = 2;
            return ctl.enqueue(te.encode(tail));
          }
          ctl.close();
        },
      });
    }
    const res = await this.c.fetch('/v1/uploads', {
      method: 'POST',
      body,
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      ...({ duplex: 'half' } as object),
    }, !progress);
    if (!res.ok) throw await this.c.toError(res);
    return res.json();
  }

  private async xhr(XHR: any, blob: Blob, name: string, type: string, progress: (s: number, t: number) => void): Promise<Uploaded> {
    const token = await this.c.token();
    const form = new FormData();
    form.append('file', new Blob([blob], { type }), name);
    return new Promise((ok, err) => {
      const x = new XHR();
      x.open('POST', this.c.base + '/v1/uploads');
      if (token) x.setRequestHeader('authorization', 'Bearer ' + token);
      if (this.c.o.apiKey) x.setRequestHeader('x-api-key', this.c.o.apiKey);
      x.upload.onprogress = (e: ProgressEvent) => progress(e.loaded, e.total || blob.size);
      x.onerror = () => err(new RelayError('NETWORK', 'upload failed', true));
      x.onload = () => {
        let j: any = null;
        try {
          j = JSON.parse(x.responseText);
        } catch {
          /* not JSON */
        }
        if (x.status === 201 || x.status === 200) return ok(j);
        err(new RelayError(j?.error?.code ?? `HTTP_${x.status}`, j?.error?.message ?? `HTTP ${x.status}`, x.status === 429 || x.status >= 500, x.status));
      };
      x.send(form);
    });
  }
}
