// HS256 tokens for the recipes' backends: a backend that shares the
// gateway's RELAY_JWT_SECRET signs its users' tokens and checks the ones
// its pages send back.
import { createHmac, timingSafeEqual } from 'node:crypto';

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const mac = (body, secret) => createHmac('sha256', secret).update(body).digest('base64url');

/** A token for `claims`, valid for `ttlS` seconds (an hour by default). */
export function sign(claims, secret, ttlS = 3600) {
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ exp: Math.floor(Date.now() / 1000) + ttlS, ...claims })}`;
  return `${body}.${mac(body, secret)}`;
}

/** The claims of a valid, unexpired HS256 token, else `null`. */
export function verify(token, secret) {
  const [h, p, s] = String(token ?? '').split('.');
  if (!h || !p || !s) return null;
  try {
    if (JSON.parse(Buffer.from(h, 'base64url')).alg !== 'HS256') return null;
    const want = Buffer.from(mac(`${h}.${p}`, secret));
    const got = Buffer.from(s);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return null;
    const claims = JSON.parse(Buffer.from(p, 'base64url'));
    if (typeof claims.sub !== 'string' || !(claims.exp * 1000 > Date.now())) return null;
    return claims;
  } catch {
    return null;
  }
}

/** The bearer token of a request, if any. */
export const bearer = (req) => /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
