import type { Position } from './types.js';

/** An error with the contract's code (`FORBIDDEN`, `UNAVAILABLE`, ...) or one of the client's own. */
export class RelayError extends Error {
  constructor(
    /**
     * The contract's error code, or the client's: `NETWORK` (no answer),
     * `UNCONFIRMED` (sent, connection lost before the answer: it may or may
     * not have been published), `QUEUE_FULL`, `CLOSED`, `TIMEOUT`,
     * `TOKEN_EXPIRED`, `CLOSE_1008`/`CLOSE_1009` (the server closed the socket).
     */
    readonly code: string,
    message: string,
    /** Whether the same request may succeed later. */
    readonly retryable = false,
    /** HTTP status, or WebSocket close code, when there was one. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RelayError';
  }
}

const cmpDigits = (a: string, b: string): number =>
  a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);

/**
 * Orders two event ids (`<ms>-<seq>`, numbers of any size) as the server
 * does: negative, zero or positive.
 */
export function cmpId(a: string, b: string): number {
  const i = a.indexOf('-');
  const j = b.indexOf('-');
  return (
    cmpDigits(i < 0 ? a : a.slice(0, i), j < 0 ? b : b.slice(0, j)) ||
    cmpDigits(i < 0 ? '' : a.slice(i + 1), j < 0 ? '' : b.slice(j + 1))
  );
}

/** The largest sequence number: `<ms>-MAX` stands for "everything up to that millisecond". */
const MAX_SEQ = '18446744073709551615';

/** A `since` as an event id: a plain millisecond timestamp becomes the last id of that millisecond. */
export const sinceId = (since: string): string => (since.includes('-') ? since : `${since}-${MAX_SEQ}`);

/**
 * Encodes positions as a gateway cursor: base64url (no padding) of
 * `1;<topic>=<epoch>=<id>;...` (topics cannot hold `;` or `=`, epochs are
 * `[0-9a-z]`).
 */
export function encodeCursor(positions: Iterable<[string, Position]>): string {
  let text = '1';
  for (const [topic, p] of positions) text += `;${topic}=${p.epoch}=${p.id}`;
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Decodes a gateway cursor into positions; `null` when it is not one this client understands. */
export function decodeCursor(cursor: string): Map<string, Position> | null {
  let text: string;
  try {
    text = atob(cursor.replace(/-/g, '+').replace(/_/g, '/'));
  } catch {
    return null;
  }
  const parts = text.split(';');
  if (parts.shift() !== '1') return null;
  const out = new Map<string, Position>();
  for (const part of parts) {
    const f = part.split('=');
    if (f.length !== 3 || !f[0] || !/^\d+-\d+$/.test(f[2]!)) return null;
    out.set(f[0], { epoch: f[1]!, id: f[2]! });
  }
  return out;
}

/** Reconnect timing: exponential backoff with full jitter. */
export interface BackoffOptions {
  /** Upper bound of the first delay, in ms (default 500). */
  initialMs?: number;
  /** Largest delay, in ms (default 30000). */
  maxMs?: number;
  /** Growth per failed attempt (default 2). */
  factor?: number;
}

/** A delay for the given attempt (0 first): uniform in [0, min(max, initial * factor^attempt)). */
export function backoff(attempt: number, o: BackoffOptions = {}): number {
  const cap = Math.min(o.maxMs ?? 30_000, (o.initialMs ?? 500) * (o.factor ?? 2) ** attempt);
  return Math.floor(Math.random() * cap);
}

/** The `exp` claim of a JWT (seconds), or undefined when it has none or is not a JWT. */
export function tokenExp(token: string): number | undefined {
  try {
    const body = token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(body)).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}

/** A minimal typed event emitter; `on` returns the function that removes the listener. */
export class Emitter<E extends Record<string, (arg: any) => void>> {
  private l: { [K in keyof E]?: Set<E[K]> } = {};

  on<K extends keyof E>(name: K, fn: E[K]): () => void {
    (this.l[name] ??= new Set()).add(fn);
    return () => void this.l[name]!.delete(fn);
  }

  protected emit<K extends keyof E>(name: K, arg: Parameters<E[K]>[0]): void {
    for (const fn of this.l[name] ?? []) {
      try {
        fn(arg);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}
