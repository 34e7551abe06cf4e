// The cluster dashboard: polls GET /api/admin/cluster once a second with the
// API key the user typed (kept in sessionStorage, so it dies with the tab),
// and runs a bounded client simulator with the browser SDK bundle.
import { SwitchboardClient } from '/switchboard.js';

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = 'switchboard.adminKey';
const POLL_MS = 1000;
/** Bounds of the simulator: it runs in one browser tab. */
const MAX_CLIENTS = 500;
const MAX_RATE = 200;
/** Publishes awaiting an answer at once; past it, ticks are skipped rather than piling up. */
const MAX_INFLIGHT = 50;

let cluster = null;

// ---- API key -------------------------------------------------------------

const key = () => sessionStorage.getItem(KEY_STORAGE) ?? '';
function headers(extra = {}) {
  const k = key();
  return k ? { ...extra, authorization: `Bearer ${k}` } : extra;
}

$('key').value = key();
$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const k = $('key').value.trim();
  if (k) sessionStorage.setItem(KEY_STORAGE, k);
  else sessionStorage.removeItem(KEY_STORAGE);
  void poll();
});
$('forget-key').addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORAGE);
  $('key').value = '';
  void poll();
});

// ---- polling -------------------------------------------------------------

function setStatus(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
}

/** Nothing of the cluster stays on screen once the key is refused. */
function hideData(message) {
  cluster = null;
  $('data').hidden = true;
  $('nodes').replaceChildren();
  $('notice').hidden = false;
  $('notice').textContent = message;
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    const res = await fetch('/api/admin/cluster', { headers: headers(), cache: 'no-store', signal: AbortSignal.timeout(3000) });
    if (res.status === 401) {
      setStatus('unauthorized', 'API key needed');
      hideData(key() ? 'The node refused this API key.' : 'Enter the API key of the cluster (the node’s --api-key) to see it.');
      return;
    }
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      setStatus('error', `error ${res.status}`);
      hideData(body.error?.message ?? `the node answered ${res.status}`);
      return;
    }
    cluster = await res.json();
    setStatus('live', 'live');
    render(cluster);
  } catch (err) {
    // The node serving the page is down or slow: keep the last picture but say so.
    setStatus('error', 'node unreachable');
    $('answered-by').textContent = String(err?.message ?? err);
  } finally {
    polling = false;
  }
}

// ---- rendering -----------------------------------------------------------

const fmt = (n, digits = 0) => (typeof n === 'number' ? n.toLocaleString(undefined, { maximumFractionDigits: digits }) : '–');
function uptime(s) {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
function pill(text, kind) {
  const span = document.createElement('span');
  span.className = `pill ${kind}`;
  span.textContent = text;
  return span;
}

const COLUMNS = ['id', 'url', 'state', 'broker', 'connections', 'subscriptions', 'in', 'out', 'p50', 'p99', 'uptime', 'simulated'];
const NUMERIC = new Set(['connections', 'subscriptions', 'in', 'out', 'p50', 'p99', 'uptime', 'simulated']);

function rowFor(id) {
  const tbody = $('nodes');
  let tr = tbody.querySelector(`tr[data-node="${CSS.escape(id)}"]`);
  if (!tr) {
    tr = document.createElement('tr');
    tr.dataset.node = id;
    for (const c of COLUMNS) {
      const td = document.createElement('td');
      td.dataset.col = c;
      td.className = c === 'url' ? 'url' : NUMERIC.has(c) ? 'num' : '';
      tr.append(td);
    }
    tbody.append(tr);
  }
  return tr;
}

function render(view) {
  $('notice').hidden = true;
  $('data').hidden = false;
  $('answered-by').textContent = `answered by ${view.node}`;
  $('routing').textContent = `routing: ${view.routing}`;
  const t = view.totals;
  $('t-nodes').textContent = `${t.ready} / ${t.nodes}`;
  $('t-connections').textContent = fmt(t.connections);
  $('t-subscriptions').textContent = fmt(t.subscriptions);
  $('t-in').textContent = fmt(t.messagesInPerSec, 1);
  $('t-out').textContent = fmt(t.messagesOutPerSec, 1);
  const kinds = [...new Set(view.nodes.map((n) => n.broker ?? '?'))].join(', ');
  const healthy = view.nodes.filter((n) => n.ready || n.draining).length;
  $('t-broker').textContent = `${kinds} ${healthy === view.nodes.length ? 'ok' : `${view.nodes.length - healthy} down`}`;
  $('t-broker').dataset.ok = String(healthy === view.nodes.length);

  const live = new Set(view.nodes.map((n) => n.id));
  for (const tr of [...$('nodes').querySelectorAll('tr[data-node]')]) if (!live.has(tr.dataset.node)) tr.remove();
  const simulated = sim.perNode();
  for (const n of view.nodes) {
    const tr = rowFor(n.id);
    tr.dataset.self = String(n.id === view.node);
    const cell = (c) => tr.querySelector(`td[data-col="${c}"]`);
    cell('id').textContent = n.id;
    cell('url').textContent = n.url;
    cell('state').replaceChildren(n.draining ? pill('draining', 'warn') : n.ready ? pill('ready', 'ok') : pill('not ready', 'bad'));
    cell('broker').replaceChildren(pill(n.broker ?? '?', n.ready || n.draining ? 'ok' : 'bad'));
    cell('connections').textContent = fmt(n.connections);
    cell('subscriptions').textContent = fmt(n.subscriptions);
    cell('in').textContent = fmt(n.messagesInPerSec, 1);
    cell('out').textContent = fmt(n.messagesOutPerSec, 1);
    cell('p50').textContent = fmt(n.latencyP50Ms, 1);
    cell('p99').textContent = fmt(n.latencyP99Ms, 1);
    cell('uptime').textContent = uptime(n.uptime);
    cell('simulated').textContent = fmt(simulated.get(n.id) ?? 0);
  }
  renderRing(view);
}

function renderRing(view) {
  const withShare = view.nodes.filter((n) => typeof n.ringShare === 'number');
  $('ring-section').hidden = withShare.length === 0;
  const bars = $('ring-bars');
  bars.replaceChildren(
    ...withShare.map((n) => {
      const row = document.createElement('div');
      row.className = 'bar';
      row.dataset.node = n.id;
      const name = document.createElement('span');
      name.textContent = n.id;
      const track = document.createElement('div');
      track.className = 'track';
      const fill = document.createElement('div');
      fill.className = 'fill';
      fill.style.width = `${(n.ringShare * 100).toFixed(1)}%`;
      track.append(fill);
      const pct = document.createElement('span');
      pct.className = 'pct';
      pct.textContent = `${(n.ringShare * 100).toFixed(1)} %`;
      row.append(name, track, pct);
      return row;
    }),
  );
}

// ---- client simulator ------------------------------------------------------

const sim = {
  clients: [],
  received: 0,
  lastReceived: 0,
  /** Round-robin cursor over the live node URLs. */
  cursor: 0,
  liveUrls() {
    return (cluster?.nodes ?? []).filter((n) => n.ready).map((n) => n.url);
  },
  nextUrl() {
    const urls = this.liveUrls();
    if (urls.length === 0) return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    return urls[this.cursor++ % urls.length];
  },
  perNode() {
    const counts = new Map();
    for (const c of this.clients) if (c.node) counts.set(c.node, (counts.get(c.node) ?? 0) + 1);
    return counts;
  },
  open(count, room, token) {
    const n = Math.min(MAX_CLIENTS - this.clients.length, Math.floor(count));
    const run = Date.now().toString(36);
    for (let i = 0; i < n; i++) {
      const entry = { url: this.nextUrl(), failed: false, node: null, client: null };
      const options = {
        url: entry.url,
        device: null,
        minReconnectDelay: 200,
        maxReconnectDelay: 3000,
        // A client whose node went away (or refused it) moves on to the next live node.
        resolveUrl: async () => {
          if (entry.failed || !this.liveUrls().includes(entry.url)) entry.url = this.nextUrl();
          entry.failed = false;
          return entry.url;
        },
      };
      if (token) options.token = token;
      else options.params = { user: `sim-${run}-${this.clients.length}` };
      const client = new SwitchboardClient(options);
      client.on('connected', (c) => { entry.node = c.node; });
      client.on('disconnected', () => { entry.node = null; entry.failed = true; });
      client.on('message', () => { this.received++; });
      client.on('error', () => undefined);
      client.connect();
      client.subscribe(room);
      entry.client = client;
      this.clients.push(entry);
    }
  },
  close() {
    for (const c of this.clients) c.client.disconnect();
    this.clients = [];
  },
};

$('sim-open').addEventListener('click', () => {
  const count = Number($('sim-count').value);
  if (!Number.isFinite(count) || count < 1) return;
  sim.open(Math.min(count, MAX_CLIENTS), $('sim-room').value.trim() || 'room.sim', $('sim-token').value.trim());
  $('sim-note').textContent = sim.clients.length >= MAX_CLIENTS ? `at most ${MAX_CLIENTS} clients per tab` : '';
  $('sim-close').disabled = false;
});
$('sim-close').addEventListener('click', () => {
  sim.close();
  $('sim-close').disabled = true;
});

const traffic = { timer: null, sent: 0, failed: 0, inflight: 0, seq: 0 };

function publishOne(room) {
  if (traffic.inflight >= MAX_INFLIGHT) return;
  traffic.inflight++;
  fetch('/api/publish', {
    method: 'POST',
    headers: headers({ 'content-type': 'application/json' }),
    body: JSON.stringify({ channel: room, data: { seq: ++traffic.seq, at: Date.now() } }),
    signal: AbortSignal.timeout(5000),
  })
    .then((res) => { if (res.ok) traffic.sent++; else traffic.failed++; })
    .catch(() => { traffic.failed++; })
    .finally(() => { traffic.inflight--; });
}

$('traffic-start').addEventListener('click', () => {
  const rate = Math.max(1, Math.min(MAX_RATE, Math.floor(Number($('traffic-rate').value) || 1)));
  const room = $('sim-room').value.trim() || 'room.sim';
  clearInterval(traffic.timer);
  // Ten ticks a second, carrying the fractional remainder so the rate is exact over a second.
  let owed = 0;
  traffic.timer = setInterval(() => {
    owed += rate / 10;
    for (; owed >= 1; owed--) publishOne(room);
  }, 100);
  $('traffic-start').disabled = true;
  $('traffic-stop').disabled = false;
});
$('traffic-stop').addEventListener('click', () => {
  clearInterval(traffic.timer);
  traffic.timer = null;
  $('traffic-start').disabled = false;
  $('traffic-stop').disabled = true;
});

function renderSim() {
  $('sim-open-count').textContent = fmt(sim.clients.length);
  $('sim-connected').textContent = fmt(sim.clients.filter((c) => c.node).length);
  $('traffic-sent').textContent = fmt(traffic.sent);
  $('traffic-failed').textContent = fmt(traffic.failed);
  $('sim-received').textContent = fmt(sim.received);
  $('sim-received-rate').textContent = fmt(sim.received - sim.lastReceived);
  sim.lastReceived = sim.received;
}

setInterval(() => { void poll(); renderSim(); }, POLL_MS);
void poll();
