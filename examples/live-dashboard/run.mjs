// node examples/live-dashboard/run.mjs: the dashboard pages, the feeder
// (with made-up business events every second unless DEMO=0), and the
// statistics schedule, against a local Relay.
//
// Settings: RELAY_URL (http://127.0.0.1:8080), RELAY_API_KEY (the dev key),
// RELAY_JWT_SECRET (the gateway's, to sign dashboard tokens; without it a
// development secret the gateway does not check), DASH_ORGS (acme,globex),
// STATS_EVERY_MS (5000), DEMO (1), PORT (3004).
//
// Routes besides the pages:
//   GET  /api/login?user=ana&org=acme   a dashboard token for that organisation (development login)
//   POST /api/events   (X-Api-Key)      a business event, or an array of them, e.g.
//                                       {"org":"acme","type":"contribution.paid","member":"Ana","amount":25}
//   POST /api/notice   (X-Api-Key)      {"text":"..."}: an announcement on every organisation's feed
import { timingSafeEqual } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { sign } from '../lib/jwt.mjs';
import { json, readJson, serve, settings } from '../lib/serve.mjs';
import { createFeeder, invalid } from './feeder.mjs';

const s = settings(3004);
const secret = s.secret ?? 'development-only-secret-not-checked-by-relay';
const orgs = (process.env.DASH_ORGS ?? 'acme,globex').split(',').map((o) => o.trim()).filter(Boolean);
const feeder = createFeeder({ relayUrl: s.relayUrl, apiKey: s.apiKey, orgs });
const isServer = (req) => {
  const key = Buffer.from(String(req.headers['x-api-key'] ?? ''));
  const want = Buffer.from(s.apiKey);
  return key.length === want.length && timingSafeEqual(key, want);
};
const fail = (res, status, code, message) => (json(res, status, { error: { code, message } }), true);

async function api(req, res, url) {
  if (url.pathname === '/api/login' && req.method === 'GET') {
    const user = url.searchParams.get('user') ?? 'ana';
    const org = url.searchParams.get('org') ?? orgs[0];
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(user) || !orgs.includes(org)) return fail(res, 400, 'INVALID', `user, and org: one of ${orgs}`);
    // The token lets its holder read its organisation's dashboard topics, nothing else.
    return json(res, 200, { token: sign({ sub: user, org, topics: [`dash:${org}:*`] }, secret) }), true;
  }
  if ((url.pathname === '/api/events' || url.pathname === '/api/notice') && req.method === 'POST') {
    if (!isServer(req)) return fail(res, 401, 'UNAUTHORIZED', 'X-Api-Key required');
    const body = await readJson(req);
    if (url.pathname === '/api/notice') {
      if (typeof body?.text !== 'string' || !body.text || body.text.length > 500) return fail(res, 400, 'INVALID', 'text: 1 to 500 characters');
      return json(res, 200, await feeder.notice(body.text)), true;
    }
    const events = Array.isArray(body) ? body : [body];
    const bad = events.map(invalid).find(Boolean);
    if (bad || events.length > 1000) return fail(res, 400, 'INVALID', bad ?? 'at most 1000 events per call');
    const ids = [];
    for (const ev of events) ids.push((await feeder.event(ev)).event_ids); // in order
    return json(res, 200, { event_ids: ids }), true;
  }
  return false;
}

const { url } = await serve({ root: fileURLToPath(new URL('public', import.meta.url)), port: s.port, host: s.host, config: { relayUrl: s.relayUrl }, api });
console.log(`live-dashboard: open ${url}/?org=${orgs[0]} and ${url}/?org=${orgs[1] ?? orgs[0]} (Relay at ${s.relayUrl})`);

// Periodic statistics: this process takes the schedule's jobs, then the schedule is set.
feeder.work().then((why) => why && console.log(`live-dashboard: no periodic statistics: ${why}`));
(async () => {
  const every = Number(process.env.STATS_EVERY_MS ?? 5000);
  for (let i = 0; i < 20; i++) {
    try {
      await feeder.schedule(every);
      return console.log(`live-dashboard: schedule dash-stats every ${every} ms`);
    } catch (e) {
      if (e.status === 404 || e.status === 405) return console.log('live-dashboard: no periodic statistics: the gateway has no schedules (PUT /v1/schedules/{name})');
      await new Promise((r) => setTimeout(r, 1000)); // the kind becomes known once the lease call is in
    }
  }
  console.log('live-dashboard: the schedule could not be set');
})();

if (process.env.DEMO !== '0') {
  const names = ['Ana', 'Bao', 'Chidi', 'Dana', 'Eli', 'Farah'];
  const pick = (a) => a[Math.floor(Math.random() * a.length)];
  const types = ['contribution.paid', 'contribution.paid', 'member.created', 'approval.pending', 'approval.approved'];
  setInterval(() => {
    const type = pick(types);
    feeder.event({ org: pick(orgs), type, member: pick(names), ...(type === 'contribution.paid' && { amount: Math.round(Math.random() * 20000) / 100 }) }).catch((e) => console.error(e.message));
  }, 1000);
  setInterval(() => feeder.notice('Maintenance tonight at 23:00').catch((e) => console.error(e.message)), 30_000);
}
process.on('SIGTERM', () => (feeder.stop(), process.exit(0)));
