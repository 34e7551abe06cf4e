// The four scenarios, each on running servers and a running fleet of load
// generators, each bounded in count and time:
// 1. idle: open connections at a fixed rate, connect latency, memory per connection;
// 2. broadcast: subscribers of one room on one server, publications in bursts,
//    server CPU per delivery, deliveries/s, every delivery exactly once;
// 3. targeted: users spread over the servers, a separate publisher process
//    sends to one user each at fixed rates over WebSocket, publish-to-delivery latency;
// 4. recovery: subscribers of a channel with history drop, miss messages,
//    rejoin from their position; messages replayed per second.
import { type Cluster, cpuByPid, cpuUsed, memorySum, redisCpuMs, type ServerStalls, stalls } from '../lib/cluster.js';
import { pooledCount } from '../lib/pool.js';
import { merged, type Quantiles, quantilesOfSorted as quantiles } from '../lib/stats.js';
import { sleep } from '../lib/wait.js';
import { type Fleet, shares } from './fleet.js';
import { type Join, nowMs, type RejoinReply, REPLAY_CHANNEL, ROOM } from './protocol.js';

/** Connections opening at once per generator, at most (the rate is the real limit). */
const CONNECT_CONCURRENCY = 500;
/** Connects per second an unpaced phase (rate 0) is given time for, at the least. */
const SLOWEST_UNPACED_RATE = 100;
/** A phase's connects may take their nominal time plus this. */
const CONNECT_SLACK_MS = 60_000;
const COMMAND_TIMEOUT_MS = 30_000;
/** After the last publication, how long deliveries may still arrive. */
const DRAIN_MS = 15_000;
/** After closing connections, so that the servers have processed the closes before the next phase. */
const SETTLE_MS = 2_000;
/** Before each rate, how long the servers' idle CPU is measured. */
const IDLE_CPU_WINDOW_MS = 1_000;
/** Publications through HTTP at once (one burst goes out back to back up to this). */
const HTTP_IN_FLIGHT = 50;

export interface IdleResult {
  connections: number;
  opened: number;
  failed: number;
  firstError?: string;
  /** Requested new connections per second, and what the generators achieved. */
  rate: number;
  achievedRate: number;
  connect: Quantiles;
  /** CPU of every server process while the connections opened, µs per connection. */
  cpuUsPerConnect: number;
  serverProcesses: number;
  heapPerConnection: number;
  rssPerConnection: number;
  heapBefore: number;
  rssBefore: number;
  heapAfter: number;
  rssAfter: number;
}

export interface BroadcastResult {
  subscribers: number;
  bursts: number;
  burst: number;
  pauseMs: number;
  publications: number;
  failedPublications: number;
  expected: number;
  delivered: number;
  lost: number;
  duplicates: number;
  /** Connections that did not get every publication exactly once. */
  connectionsOff: number;
  seconds: number;
  deliveriesPerSecond: number;
  /** CPU of every server process of the kind, µs per delivery. */
  cpuUsPerDelivery: number;
  /** CPU of the kind's redis-server over the same window, µs per delivery (0 for bare ws). */
  redisCpuUsPerDelivery: number;
  /** Publication → delivery over all deliveries (same clock in every process). */
  latency: Quantiles;
}

export interface TargetedResult {
  rate: number;
  seconds: number;
  sent: number;
  achievedRate: number;
  /** Ticks in which the publisher process could not keep up: the generator, not the server, fell behind. */
  generatorBehindTicks: number;
  failed: number;
  firstError?: string;
  delivered: number;
  lost: number;
  latency: Quantiles;
  /** CPU of every server process (not Redis) from the first send to the end of the drain, less their idle CPU over as long (measured just before), µs per message sent. */
  cpuUsPerMessage: number;
  /** CPU of the kind's redis-server from the first send to the end of the drain, µs per message (idle not subtracted). */
  redisCpuUsPerMessage: number;
  /** Server GC pauses and event-loop delay during the rate (every process). */
  server: ServerStalls;
  /** The receiving generators' worst event-loop delay, ms. */
  generatorLoopDelayMaxMs: number;
}

/** The generators' rejoin replies summed, with the set-up and the rate they give. */
export type RecoveryResult =
  | { supported: false; reason: string }
  | (RejoinReply & { supported: true; setup: string; clients: number; missed: number; replayedPerSecond: number });

/** What the generators' connects of one phase came to, summed. */
export interface Opened {
  opened: number;
  failed: number;
  firstError?: string;
  seconds: number;
  latencies: Float64Array;
  /** The `nowMs()` at which each connection became ready, summed. */
  openedAtSum: number;
  /** The generators' worst event-loop delay while connecting, ms. */
  generatorLoopDelayMaxMs: number;
}

/**
 * Opens `count` connections spread over the generators, connection i to
 * `ports[i % ports.length]`, at `rate`/s in all (0: as fast as they go);
 * at most `inFlight` opening at once over the whole fleet (split among the
 * generators, at least one each), by default `CONNECT_CONCURRENCY` per generator.
 */
export async function connectAll(fleet: Fleet, c: Cluster, ports: number[], count: number, join: Join, rate: number, inFlight?: number): Promise<Opened> {
  const parts = shares(count, fleet.gens.length);
  const firsts = parts.map((_, i) => parts.slice(0, i).reduce((s, n) => s + n, 0));
  const windows = inFlight === undefined ? parts.map(() => CONNECT_CONCURRENCY) : shares(inFlight, fleet.gens.length).map((n) => Math.max(1, n));
  const perGen = rate > 0 ? rate / fleet.gens.length : 0;
  const timeout = (count / (rate > 0 ? rate : SLOWEST_UNPACED_RATE)) * 1000 + CONNECT_SLACK_MS;
  const replies = await fleet.all((i) => ({ type: 'connect', kind: c.kind, ports, first: firsts[i]!, count: parts[i]!, join, rate: perGen, concurrency: windows[i]! }), timeout);
  return {
    opened: replies.reduce((s, r) => s + r.opened, 0),
    failed: replies.reduce((s, r) => s + r.failed, 0),
    firstError: replies.find((r) => r.firstError)?.firstError,
    seconds: Math.max(...replies.map((r) => r.seconds)),
    latencies: merged(replies.map((r) => r.latencies)),
    openedAtSum: replies.reduce((s, r) => s + r.openedAtSum, 0),
    generatorLoopDelayMaxMs: Math.max(...replies.map((r) => r.loopDelayMaxMs)),
  };
}

/** Closes every generator's connections and waits `SETTLE_MS`, so that the servers have processed the closes. */
export async function closeAll(fleet: Fleet): Promise<void> {
  await fleet.all(() => ({ type: 'close' }), COMMAND_TIMEOUT_MS);
  await sleep(SETTLE_MS);
}

async function received(fleet: Fleet): Promise<number> {
  return (await fleet.all(() => ({ type: 'count' }), COMMAND_TIMEOUT_MS)).reduce((s, r) => s + r.received, 0);
}

/** Waits until the generators together have `n` deliveries, or `timeoutMs`; true when they do. */
async function waitReceived(fleet: Fleet, n: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await received(fleet)) >= n) return true;
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
}

/** Idle: `count` connections to the first server (all its processes) at `rate`/s; memory summed over every server process. */
export async function idle(fleet: Fleet, c: Cluster, count: number, rate: number): Promise<IdleResult> {
  const before = await memorySum(c);
  const cpu0 = cpuByPid(c);
  const r = await connectAll(fleet, c, [c.ports[0]!], count, 'plain', rate);
  const cpu = cpuUsed(cpu0, cpuByPid(c));
  try {
    await sleep(SETTLE_MS);
    const after = await memorySum(c);
    const n = Math.max(1, r.opened);
    return {
      connections: count,
      opened: r.opened,
      failed: r.failed,
      firstError: r.firstError,
      rate,
      achievedRate: r.opened / r.seconds,
      connect: quantiles(r.latencies),
      cpuUsPerConnect: (cpu * 1000) / n,
      serverProcesses: after.processes,
      heapPerConnection: (after.heapUsed - before.heapUsed) / n,
      rssPerConnection: (after.rss - before.rss) / n,
      heapBefore: before.heapUsed,
      rssBefore: before.rss,
      heapAfter: after.heapUsed,
      rssAfter: after.rss,
    };
  } finally {
    await closeAll(fleet);
  }
}

/** Calls `fn(n)` for n in [from, from + count), at most `HTTP_IN_FLIGHT` at once; the number that failed. */
const pooledCalls = (from: number, count: number, fn: (n: number) => Promise<void>): Promise<{ failed: number; firstError?: string }> =>
  pooledCount(from, count, HTTP_IN_FLIGHT, fn);

/** Broadcast: `subscribers` in one room on server 0; `bursts` × `burst` publications through server 0, each burst back to back, then `pauseMs`. */
export async function broadcast(fleet: Fleet, c: Cluster, subscribers: number, bursts: number, burst: number, pauseMs: number): Promise<BroadcastResult> {
  const opened = await connectAll(fleet, c, [c.ports[0]!], subscribers, 'room', 0);
  try {
    if (opened.failed > 0) throw new Error(`broadcast: ${opened.failed} subscribers failed to connect: ${opened.firstError}`);
    const total = bursts * burst;
    await fleet.all(() => ({ type: 'expect', messages: total, latencies: true }), COMMAND_TIMEOUT_MS);
    await sleep(SETTLE_MS);
    const cpu0 = cpuByPid(c);
    const redis0 = redisCpuMs(c);
    const began = nowMs();
    let failed = 0;
    for (let b = 0; b < bursts; b++) {
      const r = await pooledCalls(b * burst, burst, (n) => c.publish(0, ROOM, { n, t: nowMs() }));
      failed += r.failed;
      if (r.firstError) console.log(`  publication failed: ${r.firstError}`);
      if (b < bursts - 1) await sleep(pauseMs);
    }
    const expected = total * subscribers;
    await waitReceived(fleet, (total - failed) * subscribers, DRAIN_MS);
    await sleep(300); // late duplicates
    const cpu = cpuUsed(cpu0, cpuByPid(c));
    const redisCpu = redisCpuMs(c) - redis0;
    const replies = await fleet.all(() => ({ type: 'collect' }), COMMAND_TIMEOUT_MS);
    const counts = new Float64Array(total);
    for (const r of replies) r.counts.forEach((v, i) => (counts[i]! += v));
    let lost = 0;
    let duplicates = 0;
    for (const v of counts) {
      lost += Math.max(0, subscribers - v);
      duplicates += Math.max(0, v - subscribers);
    }
    const delivered = replies.reduce((s, r) => s + r.received, 0);
    const lastAt = Math.max(...replies.map((r) => r.lastAt));
    const seconds = (lastAt - began) / 1000;
    return {
      subscribers, bursts, burst, pauseMs, publications: total, failedPublications: failed, expected, delivered, lost, duplicates,
      connectionsOff: replies.reduce((s, r) => s + r.connectionsOff, 0),
      seconds,
      deliveriesPerSecond: delivered / seconds,
      cpuUsPerDelivery: (cpu * 1000) / Math.max(1, delivered),
      redisCpuUsPerDelivery: (redisCpu * 1000) / Math.max(1, delivered),
      latency: quantiles(merged(replies.map((r) => r.latencies))),
    };
  } finally {
    await closeAll(fleet);
  }
}

/** Targeted: `users` spread over every server; for each rate, `seconds` of sends from the publisher process (WebSocket, spread over every server) to one user each. */
export async function targeted(fleet: Fleet, c: Cluster, users: number, rates: number[], seconds: number, perPort: number, onRate: (r: TargetedResult) => void): Promise<TargetedResult[]> {
  const opened = await connectAll(fleet, c, c.ports, users, 'plain', 0);
  const out: TargetedResult[] = [];
  try {
    if (opened.failed > 0) throw new Error(`targeted: ${opened.failed} users failed to connect: ${opened.firstError}`);
    const warm = Math.min(500, users);
    await fleet.all(() => ({ type: 'expect', messages: warm, latencies: false }), COMMAND_TIMEOUT_MS);
    await fleet.publisher.ask({ type: 'publish', kind: c.kind, ports: c.ports, perPort, users, count: warm, rate: 500 }, COMMAND_TIMEOUT_MS);
    await waitReceived(fleet, warm, DRAIN_MS);
    for (const rate of rates) {
      const count = Math.round(rate * seconds);
      await fleet.all(() => ({ type: 'expect', messages: count, latencies: true }), COMMAND_TIMEOUT_MS);
      // The servers' CPU while nothing is sent (heartbeats, timers, GC of the last phase), to subtract below.
      const idle0 = cpuByPid(c);
      const idleT0 = nowMs();
      await sleep(IDLE_CPU_WINDOW_MS);
      const idleCpuPerMs = cpuUsed(idle0, cpuByPid(c)) / (nowMs() - idleT0);
      await stalls(c);
      const cpu0 = cpuByPid(c);
      const redis0 = redisCpuMs(c);
      const busyT0 = nowMs();
      const pub = await fleet.publisher.ask({ type: 'publish', kind: c.kind, ports: c.ports, perPort, users, count, rate }, seconds * 3_000 + 30_000);
      await waitReceived(fleet, pub.sent - pub.failed, DRAIN_MS);
      await sleep(300);
      const cpu = Math.max(0, cpuUsed(cpu0, cpuByPid(c)) - idleCpuPerMs * (nowMs() - busyT0));
      const redisCpu = redisCpuMs(c) - redis0;
      const server = await stalls(c);
      const replies = await fleet.all(() => ({ type: 'collect' }), COMMAND_TIMEOUT_MS);
      let lost = 0;
      const counts = new Uint32Array(count);
      for (const r of replies) r.counts.forEach((v, i) => (counts[i]! += v));
      for (let i = 0; i < pub.sent; i++) if (counts[i] === 0) lost++;
      const r: TargetedResult = {
        rate, seconds, sent: pub.sent, achievedRate: pub.achievedRate, generatorBehindTicks: pub.behindTicks, failed: pub.failed, firstError: pub.firstError,
        delivered: replies.reduce((s, x) => s + x.received, 0), lost,
        latency: quantiles(merged(replies.map((x) => x.latencies))),
        server,
        cpuUsPerMessage: (cpu * 1000) / Math.max(1, pub.sent),
        redisCpuUsPerMessage: (redisCpu * 1000) / Math.max(1, pub.sent),
        generatorLoopDelayMaxMs: Math.max(...replies.map((x) => x.loopDelayMaxMs)),
      };
      out.push(r);
      onRate(r);
    }
  } finally {
    await closeAll(fleet);
  }
  return out;
}

/** Recovery: `clients` on the replay channel (spread over every server) drop, `missed` publications go out, they rejoin from their position. */
export async function recovery(fleet: Fleet, c: Cluster, clients: number, missed: number, setup: string): Promise<RecoveryResult> {
  const opened = await connectAll(fleet, c, c.ports, clients, 'replay', 0);
  try {
    if (opened.failed > 0) throw new Error(`recovery: ${opened.failed} clients failed to connect: ${opened.firstError}`);
    // One message first, so that every client has a position (Socket.IO sends its offset only once it got a packet).
    await fleet.all(() => ({ type: 'expect', messages: 1, latencies: false }), COMMAND_TIMEOUT_MS);
    await c.publish(0, REPLAY_CHANNEL, { n: 0, t: nowMs() });
    if (!(await waitReceived(fleet, clients, DRAIN_MS))) throw new Error('recovery: the first message did not reach every client');
    const drops = await fleet.all(() => ({ type: 'drop' }), COMMAND_TIMEOUT_MS);
    const withoutPosition = drops.reduce((s, d) => s + d.withoutPosition, 0);
    if (withoutPosition > 0) throw new Error(`recovery: ${withoutPosition} clients have no position`);
    await sleep(SETTLE_MS);
    await fleet.all(() => ({ type: 'expect', messages: missed, latencies: false }), COMMAND_TIMEOUT_MS);
    const pub = await pooledCalls(0, missed, (n) => c.publish(0, REPLAY_CHANNEL, { n, t: nowMs() }));
    if (pub.failed > 0) throw new Error(`recovery: ${pub.failed} publications failed: ${pub.firstError}`);
    await sleep(500);
    const replies = await fleet.all(() => ({ type: 'rejoin', missed, concurrency: 100, timeoutMs: 60_000 }), 90_000);
    const replayed = replies.reduce((s, r) => s + r.replayed, 0);
    const seconds = Math.max(...replies.map((r) => r.seconds));
    return {
      supported: true, setup, clients, missed,
      rejoined: replies.reduce((s, r) => s + r.rejoined, 0),
      failed: replies.reduce((s, r) => s + r.failed, 0),
      firstError: replies.find((r) => r.firstError)?.firstError,
      notRecovered: replies.reduce((s, r) => s + r.notRecovered, 0),
      complete: replies.reduce((s, r) => s + r.complete, 0),
      replayed, seconds, replayedPerSecond: replayed / seconds,
    };
  } finally {
    await closeAll(fleet);
  }
}

