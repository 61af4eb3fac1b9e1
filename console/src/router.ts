// Hash routes (`#/jobs/ID?x=y`), so the gateway serves one page and
// reloads land where they were.
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  /** The path's segments: `#/jobs/abc` is `['jobs', 'abc']`. */
  path: string[];
  query: URLSearchParams;
}

export function parse(hash: string): Route {
  const raw = hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = (q < 0 ? raw : raw.slice(0, q)).split('/').filter(Boolean).map(decodeURIComponent);
  return { path, query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
}

/** `#/a/b?k=v` from segments and a query (empty values left out). */
export function href(path: string[], query: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) q.set(k, v);
  const qs = q.toString();
  return '#/' + path.map(encodeURIComponent).join('/') + (qs ? '?' + qs : '');
}

export function go(path: string[], query?: Record<string, string | undefined>): void {
  location.hash = href(path, query);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.hash));
  useEffect(() => {
    const on = () => setRoute(parse(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}
