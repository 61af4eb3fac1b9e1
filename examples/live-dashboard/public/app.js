// An organisation's dashboard: KPI tiles, an activity feed and the
// statistics of the last minute, each from one Relay topic of that
// organisation (dash:{org}:kpi, dash:{org}:activity, dash:{org}:stats). The
// page's token may read only its own organisation's topics; any other is
// refused by the gateway.
import { RelayClient } from '/relay-client.js';

const config = await (await fetch('/config.json')).json();
const hash = new URLSearchParams(location.hash.slice(1));
const query = new URLSearchParams(location.search);
// #token=<jwt> (from your own login), else the recipe's development login.
const token = hash.get('token') ?? (await login(query.get('user') ?? 'ana', query.get('org') ?? 'acme'));
const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
const org = hash.get('org') ?? claims.org; // another organisation here is refused
const client = new RelayClient({ url: config.relayUrl, token });
const $ = (id) => document.getElementById(id);
$('org').textContent = org;
client.on('state', ({ state, transport }) => {
  $('conn').dataset.state = state;
  $('conn').textContent = transport ? `${state} · ${transport}` : state;
});

const refused = (e) => {
  $('error').textContent = `${e.code}: this dashboard is not yours to see (${e.message})`;
  document.body.dataset.refused = 'true';
};

// Each topic's retained history is replayed first (since 0-0), so a page
// opened now shows the latest KPIs, the recent activity and the latest
// statistics at once, then every change live.
client.subscribe(`dash:${org}:kpi`, {
  since: '0-0',
  onEvent: (e) => showKpis(e.data.kpis),
  onError: refused,
});
client.subscribe(`dash:${org}:activity`, {
  since: '0-0',
  onEvent: (e) => addToFeed(e),
  onError: refused,
});
client.subscribe(`dash:${org}:stats`, {
  since: '0-0',
  onEvent: (e) => {
    const d = e.data;
    $('stats').dataset.tick = String(d.tick);
    $('stats').textContent = `${d.events_last_minute} events · ${money(d.amount_last_minute)} paid (update ${d.tick}, ${new Date(d.at).toLocaleTimeString('en-GB')})`;
  },
  onError: refused,
});

function showKpis(k) {
  $('members').textContent = String(k.members);
  $('contributions').textContent = String(k.contributions);
  $('amount').textContent = money(k.amount);
  $('pending').textContent = String(k.pending_approvals);
}

const MAX_FEED = 50;
function addToFeed(e) {
  const d = e.data;
  const li = document.createElement('li');
  li.dataset.org = d.org ?? '';
  li.dataset.type = e.type;
  li.className = e.type === 'notice' ? 'notice' : '';
  li.textContent =
    {
      'member.created': () => `New member: ${d.member}`,
      'contribution.paid': () => `${d.member} paid ${money(d.amount)}`,
      'approval.pending': () => `Approval asked by ${d.member}`,
      'approval.approved': () => `Approval given to ${d.member}`,
      notice: () => `Notice: ${d.text}`,
    }[e.type]?.() ?? e.type;
  $('feed').prepend(li);
  while ($('feed').children.length > MAX_FEED) $('feed').lastChild.remove();
}

function money(n) {
  return Number(n).toLocaleString('en', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

async function login(user, org) {
  const res = await fetch(`/api/login?user=${encodeURIComponent(user)}&org=${encodeURIComponent(org)}`);
  return (await res.json()).token;
}
