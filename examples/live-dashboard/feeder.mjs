// The dashboard feeder: the backend side of the live dashboards. Business
// events (a member joins, a contribution is paid, an approval is asked or
// given) come in; each one updates its organisation's KPIs and is fanned out
// with one `POST /v1/broadcast` to that organisation's dashboard topics:
//
//   dash:{org}:activity   the event, for the activity feed
//   dash:{org}:kpi        the same event with the organisation's KPIs after it
//
// An announcement goes to every organisation's activity topic in one call.
// Periodic statistics come from a Relay schedule: each tick submits one
// `dash.stats` job, which this process takes as a worker over HTTP and
// answers by publishing each organisation's `stats.updated` on dash:{org}:stats.
// Everything is sent with the server API key; a dashboard's token may
// subscribe only to its own organisation's topics (`topics: ["dash:acme:*"]`).

export const STATS_KIND = 'dash.stats';
const ORG = /^[a-z0-9-]{1,32}$/;
/** Events remembered for the statistics (the last minute, at most this many). */
const MAX_RECENT = 10_000;
const MINUTE = 60_000;

const emptyKpis = () => ({ members: 0, contributions: 0, amount: 0, pending_approvals: 0 });

/** Applies one business event to an organisation's KPIs; false for an event it does not know. */
export function applyEvent(k, ev) {
  switch (ev.type) {
    case 'member.created':
      k.members++;
      return true;
    case 'contribution.paid':
      k.contributions++;
      k.amount = Math.round((k.amount + ev.amount) * 100) / 100;
      return true;
    case 'approval.pending':
      k.pending_approvals++;
      return true;
    case 'approval.approved':
      k.pending_approvals = Math.max(0, k.pending_approvals - 1);
      return true;
    default:
      return false;
  }
}

/** Why a business event is not acceptable, or null. */
export function invalid(ev) {
  if (!ev || typeof ev !== 'object') return 'an event is a JSON object';
  if (typeof ev.org !== 'string' || !ORG.test(ev.org)) return 'org: 1 to 32 of a-z 0-9 -';
  if (ev.type === 'contribution.paid' && !(typeof ev.amount === 'number' && ev.amount > 0 && ev.amount < 1e9)) return 'amount: a positive number';
  if (!applyEvent(emptyKpis(), ev)) return 'type: member.created, contribution.paid, approval.pending or approval.approved';
  return null;
}

export function createFeeder({ relayUrl, apiKey, orgs = [], worker = 'dash-feeder' }) {
  const kpis = new Map(orgs.map((o) => [o, emptyKpis()]));
  const recent = [];
  let stopped = false;

  async function call(method, path, body) {
    const res = await fetch(relayUrl + path, {
      method,
      headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw Object.assign(new Error(`${method} ${path}: ${res.status} ${data?.error?.message ?? text}`), { status: res.status });
    return data;
  }

  return {
    orgs: () => [...kpis.keys()],

    /** One business event: the organisation's KPIs change, and both of its topics get it at once. */
    async event(ev) {
      const k = kpis.get(ev.org) ?? emptyKpis();
      kpis.set(ev.org, k);
      applyEvent(k, ev);
      recent.push({ at: Date.now(), org: ev.org, amount: ev.type === 'contribution.paid' ? ev.amount : 0 });
      if (recent.length > MAX_RECENT) recent.shift();
      const { org, type, ...fields } = ev;
      return call('POST', '/v1/broadcast', {
        topics: [`dash:${org}:activity`, `dash:${org}:kpi`],
        type,
        data: { org, ...fields, kpis: { ...k } },
      });
    },

    /** An announcement on every organisation's activity feed, in one call. */
    notice(text) {
      return call('POST', '/v1/broadcast', { topics: [...kpis.keys()].map((o) => `dash:${o}:activity`), type: 'notice', data: { text } });
    },

    /** Each organisation's figures over the last minute, published on its stats topic. */
    async publishStats(tick) {
      const since = Date.now() - MINUTE;
      while (recent.length && recent[0].at < since) recent.shift();
      for (const org of kpis.keys()) {
        const mine = recent.filter((r) => r.org === org);
        const data = { tick, events_last_minute: mine.length, amount_last_minute: Math.round(mine.reduce((s, r) => s + r.amount, 0) * 100) / 100, at: Date.now() };
        await call('POST', '/v1/publish', { topic: `dash:${org}:stats`, type: 'stats.updated', data });
      }
      return { orgs: kpis.size };
    },

    /**
     * Takes `dash.stats` jobs (one per schedule tick) as a worker over
     * HTTP, until `stop()`. Resolves with why it cannot, when the gateway
     * has no worker endpoints.
     */
    async work() {
      let ticks = 0;
      while (!stopped) {
        let jobs;
        try {
          ({ jobs } = await call('POST', '/v1/worker/lease', { kinds: [STATS_KIND], max: 1, wait_ms: 10_000, worker }));
        } catch (e) {
          if (e.status === 404 || e.status === 405) return 'the gateway has no workers over HTTP (POST /v1/worker/lease)';
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        for (const job of jobs) {
          try {
            const result = await this.publishStats(++ticks);
            await call('POST', `/v1/worker/jobs/${job.id}/complete`, { lease: job.lease, result });
          } catch (e) {
            await call('POST', `/v1/worker/jobs/${job.id}/fail`, { lease: job.lease, error: String(e.message), retryable: true }).catch(() => {});
          }
        }
      }
      return null;
    },

    /** Creates (or replaces) the schedule that asks for statistics every `everyMs`. */
    schedule(everyMs) {
      return call('PUT', '/v1/schedules/dash-stats', { kind: STATS_KIND, payload: {}, every_ms: everyMs });
    },

    stop() {
      stopped = true;
    },
  };
}
