// The three scenarios with clients in this process (folded in from the old
// bench/peers.ts), each on a cluster of two servers, A (index 0) holding the
// clients and B (index 1, for bare ws the same process) taking the
// publications, each bounded in count and time:
// - memory: idle connections opened 100 at once; heap and RSS per
//   connection inside A after forced GCs, the time to open them;
// - broadcast-cpu: clients in one room on A, publications through A at a
//   fixed rate; A's and B's CPU per 1000 deliveries, every delivery counted;
// - cross-node: users on A, sends through B to one user each at each rate;
//   p50/p99/max publish-to-delivery (same process, same clock) and losses.
import { cpuMs } from '../lib/procs.js';
import { paced, pooled } from '../lib/pool.js';
import { percentile, sortedOf } from '../lib/stats.js';
import { sleep, waitUntil } from '../lib/wait.js';
import { type Cluster, memorySum } from '../lib/cluster.js';
import { type Conn, makeConn } from './clients.js';
import { nowMs, type Payload, ROOM } from './protocol.js';

const CONNECT_CONCURRENCY = 100;
/** Publications in flight at most; beyond this the publisher falls behind its rate (reported as the achieved rate). */
const MAX_IN_FLIGHT = 64;
/** After the last publication, how long deliveries may still arrive. */
const DRAIN_MS = 15_000;
/** After closing clients, before the next step, so the server has processed the closes. */
const SETTLE_MS = 1_500;

export interface MemoryResult {
  connections: number;
  openSeconds: number;
  heapPerConnection: number;
  rssPerConnection: number;
  heapBefore: number;
  rssBefore: number;
}

export interface BroadcastCpuResult {
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

export interface CrossNodeResult {
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

/** Server A holds the clients; B takes the publications (bare ws: A itself). */
const A = 0;
const b = (c: Cluster): number => Math.min(1, c.servers.length - 1);

async function openClients(c: Cluster, count: number, room: boolean, onData: (p: Payload) => void): Promise<Conn[]> {
  const conns: Conn[] = [];
  const users = Array.from({ length: count }, (_, i) => i);
  try {
    await pooled(users, CONNECT_CONCURRENCY, async (i) => {
      const conn = makeConn({ kind: c.kind, port: c.ports[A]!, user: `u${i}`, join: room ? 'room' : 'plain', localAddress: '127.0.0.1', onData: (_c, p) => onData(p) });
      conns.push(conn);
      await conn.open();
    });
  } catch (err) {
    for (const x of conns) x.close();
    throw err;
  }
  return conns;
}

async function closeClients(conns: Conn[]): Promise<void> {
  for (const x of conns) x.close();
  await sleep(SETTLE_MS);
}

/** Calls `fn(n)` for n < count at `rate` per second, at most `MAX_IN_FLIGHT` at once; failures are logged. */
async function pacedCalls(count: number, rate: number, fn: (n: number) => Promise<void>): Promise<{ seconds: number; failed: number }> {
  const r = await paced(count, rate, MAX_IN_FLIGHT, DRAIN_MS, fn);
  if (r.failed > 0) console.log(`  ${r.failed} publications failed, first: ${r.firstError}`);
  return r;
}

/** Memory: `n` idle connections to A; memory inside A before and after, after forced GCs. */
export async function memory(c: Cluster, n: number): Promise<MemoryResult> {
  const servers = [c.servers[A]!];
  const before = await memorySum(c, servers);
  const t0 = performance.now();
  const conns = await openClients(c, n, false, () => {});
  const openSeconds = (performance.now() - t0) / 1000;
  await sleep(SETTLE_MS);
  const after = await memorySum(c, servers);
  await closeClients(conns);
  return {
    connections: n,
    openSeconds,
    heapPerConnection: (after.heapUsed - before.heapUsed) / n,
    rssPerConnection: (after.rss - before.rss) / n,
    heapBefore: before.heapUsed,
    rssBefore: before.rss,
  };
}

/** Broadcast CPU: `clients` in one room on A, `messages` publications through A at `rate`. */
export async function broadcastCpu(c: Cluster, clients: number, messages: number, rate: number): Promise<BroadcastCpuResult> {
  const counts = new Uint32Array(messages);
  let delivered = 0;
  const conns = await openClients(c, clients, true, (p) => {
    if (Number.isInteger(p.n) && p.n >= 0 && p.n < messages) counts[p.n]!++;
    delivered++;
  });
  const [pidA, pidB] = [c.servers[A]!.proc.pid, c.servers[b(c)]!.proc.pid];
  try {
    await sleep(SETTLE_MS);
    const cpuA = cpuMs(pidA);
    const cpuB = cpuMs(pidB);
    const pub = await pacedCalls(messages, rate, (n) => c.publish(A, ROOM, { n, t: nowMs() }));
    const expected = (messages - pub.failed) * clients;
    await waitUntil(() => delivered >= expected, DRAIN_MS);
    await sleep(300); // late duplicates
    const usedA = cpuMs(pidA) - cpuA;
    const usedB = pidB === pidA ? 0 : cpuMs(pidB) - cpuB;
    let lost = 0;
    for (const x of counts) lost += Math.max(0, clients - x);
    return {
      clients, messages, rate,
      achievedRate: messages / pub.seconds,
      expected: messages * clients,
      delivered, lost,
      failedPublishes: pub.failed,
      cpuPer1000: (usedA / Math.max(1, delivered)) * 1000,
      cpuPer1000B: (usedB / Math.max(1, delivered)) * 1000,
    };
  } finally {
    await closeClients(conns);
  }
}

/** Cross-node latency: users 0..users-1 on A; for each rate, `seconds` of sends through B to one user each. */
export async function crossNode(c: Cluster, users: number, rates: number[], seconds: number, warmup: number): Promise<CrossNodeResult[]> {
  let sink: { counts: Uint8Array; lat: number[]; received: number } = { counts: new Uint8Array(warmup), lat: [], received: 0 };
  const conns = await openClients(c, users, false, (p) => {
    const at = nowMs();
    sink.received++;
    if (p.n >= 0 && p.n < sink.counts.length) {
      if (sink.counts[p.n] === 0) sink.lat.push(at - p.t);
      sink.counts[p.n] = Math.min(255, sink.counts[p.n]! + 1);
    }
  });
  const out: CrossNodeResult[] = [];
  try {
    await sleep(SETTLE_MS);
    // Unmeasured warm-up: JIT, broker connections, keep-alive sockets.
    await pacedCalls(warmup, Math.min(200, rates[0] ?? 200), (n) => c.send(b(c), `u${n % users}`, { n, t: nowMs() }));
    await waitUntil(() => sink.received >= warmup, DRAIN_MS);
    for (const rate of rates) {
      const count = Math.round(rate * seconds);
      const here = { counts: new Uint8Array(count), lat: [] as number[], received: 0 };
      sink = here;
      await sleep(500);
      const pub = await pacedCalls(count, rate, (n) => c.send(b(c), `u${(n * 7919) % users}`, { n, t: nowMs() }));
      await waitUntil(() => here.received >= count - pub.failed, DRAIN_MS);
      await sleep(300);
      let lost = 0;
      for (const x of here.counts) if (x === 0) lost++;
      const sorted = sortedOf(here.lat);
      const r: CrossNodeResult = {
        rate, seconds,
        achievedRate: count / pub.seconds,
        sent: count,
        delivered: here.received,
        lost,
        failedPublishes: pub.failed,
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        max: sorted[sorted.length - 1] ?? NaN,
      };
      out.push(r);
      console.log(`  ${c.kind} ${rate}/s: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, lost ${lost}/${count}`);
    }
  } finally {
    await closeClients(conns);
  }
  return out;
}
