// The application's backend: each user's list of items, kept here (in
// memory, for the recipe), and every change published to Relay on the
// user's topic `user:{sub}` with the server API key. Every tab of that user
// receives it, over whatever transport it has; nobody else does.
//
// Routes (the caller is identified by the same HS256 token the page gives
// Relay, signed with the secret the gateway checks):
//   GET    /api/login?user=alice   a token for that user (development login)
//   GET    /api/items              {items, rev, position, at}: the list, its revision, and the Relay event
//                                   it matches (null before the first change: then `at`, a time)
//   PUT    /api/items/{id}         {text, done}: create or change an item -> event item.set {item, rev}
//   DELETE /api/items/{id}         -> event item.removed {id, rev}
import { bearer, sign, verify } from '../lib/jwt.mjs';
import { json, readJson } from '../lib/serve.mjs';

const MAX_ITEMS = 500;
const MAX_TEXT = 200;
const USER = /^[A-Za-z0-9._@-]{1,64}$/;
const ID = /^[A-Za-z0-9_-]{1,64}$/;

export function createBackend({ relayUrl, apiKey, secret }) {
  /** user -> {items: Map, rev, position, chain}: `position` is the event id of the latest published change. */
  const users = new Map();
  const user = (sub) => {
    let u = users.get(sub);
    if (!u) users.set(sub, (u = { items: new Map(), rev: 0, position: null, chain: Promise.resolve() }));
    return u;
  };

  /** Publishes one change; a user's changes go out one at a time, in revision order. */
  function publish(sub, u, type, data) {
    const sent = u.chain.then(async () => {
      const res = await fetch(`${relayUrl}/v1/publish`, {
        method: 'POST',
        headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
        body: JSON.stringify({ topic: `user:${sub}`, type, data }),
      });
      if (!res.ok) throw new Error(`Relay answered ${res.status}: ${await res.text()}`);
      u.position = (await res.json()).event_id;
    });
    u.chain = sent.catch(() => {});
    return sent.then(
      () => true,
      (e) => (console.error(`publish to user:${sub} failed: ${e.message}`), false),
    );
  }

  return async function api(req, res, url) {
    if (!url.pathname.startsWith('/api/')) return false;
    if (url.pathname === '/api/login' && req.method === 'GET') {
      const name = url.searchParams.get('user') ?? '';
      if (!USER.test(name)) return json(res, 400, { error: { code: 'INVALID', message: 'user: 1 to 64 of A-Z a-z 0-9 . _ @ -' } }), true;
      return json(res, 200, { user: name, token: sign({ sub: name }, secret) }), true;
    }
    const claims = verify(bearer(req), secret);
    if (!claims) return json(res, 401, { error: { code: 'UNAUTHORIZED', message: 'a valid bearer token is required' } }), true;
    const sub = claims.sub;
    const u = user(sub);
    if (url.pathname === '/api/items' && req.method === 'GET') {
      return json(res, 200, { items: [...u.items.values()], rev: u.rev, position: u.position, at: Date.now() }), true;
    }
    const id = /^\/api\/items\/([^/]+)$/.exec(url.pathname)?.[1];
    if (!id || !ID.test(id)) return json(res, 404, { error: { code: 'NOT_FOUND', message: 'no such route' } }), true;
    if (req.method === 'PUT') {
      const body = await readJson(req);
      if (typeof body?.text !== 'string' || !body.text.trim() || body.text.length > MAX_TEXT) {
        return json(res, 400, { error: { code: 'INVALID', message: `text: 1 to ${MAX_TEXT} characters` } }), true;
      }
      if (!u.items.has(id) && u.items.size >= MAX_ITEMS) return json(res, 409, { error: { code: 'FULL', message: `at most ${MAX_ITEMS} items` } }), true;
      const item = { id, text: body.text.trim(), done: body.done === true };
      u.items.set(id, item);
      const rev = ++u.rev;
      const published = await publish(sub, u, 'item.set', { item, rev });
      return json(res, 200, { item, rev, published }), true;
    }
    if (req.method === 'DELETE') {
      if (!u.items.delete(id)) return json(res, 404, { error: { code: 'NOT_FOUND', message: 'no such item' } }), true;
      const rev = ++u.rev;
      const published = await publish(sub, u, 'item.removed', { id, rev });
      return json(res, 200, { id, rev, published }), true;
    }
    return json(res, 405, { error: { code: 'METHOD', message: 'GET, PUT or DELETE' } }), true;
  };
}
