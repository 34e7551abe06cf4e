// The three measurements, each on a running `Cluster`, each bounded in
// count and time: idle connections (memory inside server A after forced
// GCs), a room broadcast on A (A's CPU per 1000 deliveries), targeted
// messages published through B to users on A (latency, losses).
import { cpuMs } from '../routing/nodes.js';
import { percentile, pooled, sleep, waitUntil } from '../routing/util.js';
import { type Client, connect } from './clients.js';
import { type Cluster, memory } from './servers.js';

const CONNECT_CONCURRENCY = 100;
/** Publications in flight at most; beyond this the publisher falls behind its rate (reported as the achieved rate). */
const MAX_IN_FLIGHT = 64;
/** After the last publication, how long deliveries may still arrive. */
const DRAIN_MS = 15_000;
/** After closing clients, before the next step, so the server has processed the closes. */
const SETTLE_MS = 1_500;

export interface IdleResult {
  connections: number;
  openSeconds: number;
  heapPerConnection: number;
  rssPerConnection: number;
  heapBefore: number;
  rssBefore: number;
}

export interface BroadcastResult {
  clients: number;
  messages: number;
  rate: number;
  achievedRate: number;
  expected: number;
  delivered: number;
  lost: number;
  failedPublishes: number;
  /** CPU of server A (the clients' server), ms per 1000 deliveries. */
  cpuPer1000: number;
  /** Of server B (publications reach it through the broker), ms per 1000 deliveries. */
  cpuPer1000B: number;
}

export interface LatencyResult {
  rate: number;
  seconds: number;
  achievedRate: number;
  sent: number;
  delivered: number;
  lost: number;
  failedPublishes: number;
  p50: number;
  p99: number;
  max: number;
}

interface Payload {
  n: number;
  t: number;
}

async function openClients(cluster: Cluster, count: number, room: string | undefined, onData: (d: unknown) => void): Promise<Client[]> {
  const clients: Client[] = [];
  const users = Array.from({ length: count }, (_, i) => i);
  try {
    await pooled(users, CONNECT_CONCURRENCY, async (i) => {
      clients.push(await connect(cluster.kind, cluster.a.port, `u${i}`, room, onData));
    });
  } catch (err) {
    for (const c of clients) c.close();
    throw err;
  }
  return clients;
}

async function closeClients(clients: Client[]): Promise<void> {
  for (const c of clients) c.close();
  await sleep(SETTLE_MS);
}

/** Calls `fn(n)` for n < count at `rate` per second, at most `MAX_IN_FLIGHT` at once; resolves with the seconds it took and the failures. */
async function paced(count: number, rate: number, fn: (n: number) => Promise<void>): Promise<{ seconds: number; failed: number }> {
  const began = performance.now();
  let next = 0;
  let inFlight = 0;
  let failed = 0;
  let firstError: unknown;
  while (next < count) {
    const due = Math.min(count, Math.floor(((performance.now() - began) / 1000) * rate) + 1);
    while (next < due && inFlight < MAX_IN_FLIGHT) {
      inFlight++;
      fn(next++).then(
        () => inFlight--,
        (err: unknown) => {
          inFlight--;
          failed++;
          firstError ??= err;
        },
      );
    }
    await sleep(next < due ? 1 : Math.max(1, Math.min(5, 1000 / rate)));
  }
  await waitUntil(() => inFlight === 0, DRAIN_MS);
  if (failed > 0) console.log(`  ${failed} publications failed, first: ${(firstError as Error).message}`);
  return { seconds: (performance.now() - began) / 1000, failed };
}

export async function idle(cluster: Cluster, n: number): Promise<IdleResult> {
  const before = await memory(cluster.a);
  const t0 = performance.now();
  const clients = await openClients(cluster, n, undefined, () => {});
  const openSeconds = (performance.now() - t0) / 1000;
  await sleep(SETTLE_MS);
  const after = await memory(cluster.a);
  await closeClients(clients);
  return {
    connections: n,
    openSeconds,
    heapPerConnection: (after.heapUsed - before.heapUsed) / n,
    rssPerConnection: (after.rss - before.rss) / n,
    heapBefore: before.heapUsed,
    rssBefore: before.rss,
  };
}

export async function broadcast(cluster: Cluster, clients: number, messages: number, rate: number): Promise<BroadcastResult> {
  const counts = new Uint32Array(messages);
  let delivered = 0;
  const conns = await openClients(cluster, clients, 'room.bench', (d) => {
    const n = (d as Payload).n;
    if (Number.isInteger(n) && n >= 0 && n < messages) counts[n]!++;
    delivered++;
  });
  try {
    await sleep(SETTLE_MS);
    const cpuA = cpuMs(cluster.a.proc.pid);
    const cpuB = cpuMs(cluster.b.proc.pid);
    const pub = await paced(messages, rate, (n) => cluster.publish('room.bench', { n, t: performance.now() }));
    const expected = (messages - pub.failed) * clients;
    await waitUntil(() => delivered >= expected, DRAIN_MS);
    await sleep(300); // late duplicates
    const usedA = cpuMs(cluster.a.proc.pid) - cpuA;
    const usedB = cluster.b === cluster.a ? 0 : cpuMs(cluster.b.proc.pid) - cpuB;
    let lost = 0;
    for (const c of counts) lost += Math.max(0, clients - c);
    return {
      clients,
      messages,
      rate,
      achievedRate: messages / pub.seconds,
      expected: messages * clients,
      delivered,
      lost,
      failedPublishes: pub.failed,
      cpuPer1000: (usedA / Math.max(1, delivered)) * 1000,
      cpuPer1000B: (usedB / Math.max(1, delivered)) * 1000,
    };
  } finally {
    await closeClients(conns);
  }
}

/** Users 0..users-1 on A; for each rate, `seconds` of sends through B to a random user each. */
export async function latency(cluster: Cluster, users: number, rates: number[], seconds: number, warmup: number): Promise<LatencyResult[]> {
  let sink: { counts: Uint8Array; lat: number[]; received: number } = { counts: new Uint8Array(warmup), lat: [], received: 0 };
  const conns = await openClients(cluster, users, undefined, (d) => {
    const at = performance.now();
    const p = d as Payload;
    sink.received++;
    if (p.n >= 0 && p.n < sink.counts.length) {
      if (sink.counts[p.n] === 0) sink.lat.push(at - p.t);
      sink.counts[p.n] = Math.min(255, sink.counts[p.n]! + 1);
    }
  });
  const out: LatencyResult[] = [];
  try {
    await sleep(SETTLE_MS);
    // Unmeasured warm-up: JIT, broker connections, keep-alive sockets.
    await paced(warmup, Math.min(200, rates[0] ?? 200), (n) => cluster.send(`u${n % users}`, { n, t: performance.now() }));
    await waitUntil(() => sink.received >= warmup, DRAIN_MS);
    for (const rate of rates) {
      const count = Math.round(rate * seconds);
      const here = { counts: new Uint8Array(count), lat: [] as number[], received: 0 };
      sink = here;
      await sleep(500);
      const pub = await paced(count, rate, (n) => cluster.send(`u${(n * 7919) % users}`, { n, t: performance.now() }));
      await waitUntil(() => here.received >= count - pub.failed, DRAIN_MS);
      await sleep(300);
      let lost = 0;
      for (const c of here.counts) if (c === 0) lost++;
      const sorted = Float64Array.from(here.lat).sort();
      out.push({
        rate,
        seconds,
        achievedRate: count / pub.seconds,
        sent: count,
        delivered: here.received,
        lost,
        failedPublishes: pub.failed,
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        max: sorted[sorted.length - 1] ?? NaN,
      });
      console.log(`  ${cluster.kind} ${rate}/s: p50 ${out.at(-1)!.p50.toFixed(2)} ms, p99 ${out.at(-1)!.p99.toFixed(2)} ms, lost ${lost}/${count}`);
    }
  } finally {
    await closeClients(conns);
  }
  return out;
}
