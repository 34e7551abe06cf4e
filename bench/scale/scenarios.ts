// The scenarios on running servers and a running fleet of load generators
// (the broadcast ones are in fanout.ts), each bounded in count and time,
// and the fleet's connect, count and close steps they share:
// - idle: open connections at a fixed rate, connect latency, memory per connection;
// - targeted: users on the servers, a separate publisher process sends to
//   one user each at fixed rates (over WebSocket, HTTP or the batch API),
//   publish-to-delivery latency, CPU per message, refusals; then a search
//   for the highest sustained rate;
// - recovery: subscribers of a channel with history drop, miss messages,
//   rejoin from their position; messages replayed per second.
import { type Cluster, cpuByPid, cpuMeter, cpuUsed, memorySum, restingCpu, type ServerStalls, splitCpu, stalls } from '../lib/cluster.js';
import { pooledCount } from '../lib/pool.js';
import { merged, type Quantiles, quantilesOfSorted as quantiles } from '../lib/stats.js';
import { sleep } from '../lib/wait.js';
import { type Fleet, shares } from './fleet.js';
import { nextRate } from './search.js';
import { type Join, nowMs, type PublishReply, type RejoinReply, REPLAY_CHANNEL, type Via } from './protocol.js';

/** Connections opening at once per generator, at most (the rate is the real limit). */
const CONNECT_CONCURRENCY = 500;
/** Connects per second an unpaced phase (rate 0) is given time for, at the least. */
const SLOWEST_UNPACED_RATE = 100;
/** A phase's connects may take their nominal time plus this. */
const CONNECT_SLACK_MS = 60_000;
export const COMMAND_TIMEOUT_MS = 30_000;
/** After the last publication, how long deliveries may still arrive. */
export const DRAIN_MS = 15_000;
/** After closing connections, so that the servers have processed the closes before the next phase. */
export const SETTLE_MS = 2_000;
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

export interface TargetedResult {
  /** How the publisher sent (protocol.ts), and whether this rate was a step of the search for the highest sustained one. */
  via: Via;
  searched: boolean;
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

/** Deliveries the generators counted so far in this phase, summed. */
async function received(fleet: Fleet): Promise<number> {
  return (await fleet.all(() => ({ type: 'count' }), COMMAND_TIMEOUT_MS)).reduce((s, r) => s + r.received, 0);
}

/** Waits until the generators together have `n` deliveries, or `timeoutMs`; true when they do. */
export async function waitReceived(fleet: Fleet, n: number, timeoutMs: number): Promise<boolean> {
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
export const pooledCalls = (from: number, count: number, fn: (n: number) => Promise<void>): Promise<{ failed: number; firstError?: string }> =>
  pooledCount(from, count, HTTP_IN_FLIGHT, fn);

/**
 * Where the targeted scenario's users live and where its messages enter:
 * `spread`, users over every server and sends spread over every server (a
 * message may reach its user on the node it entered); `across`, users on
 * the first server only and sends through the others, so that every message
 * crosses the broker (bare ws, one process: the same process).
 */
export const LAYOUTS = ['spread', 'across'] as const;
export type Layout = (typeof LAYOUTS)[number];

export interface TargetedOptions {
  /** How the publisher sends, each in turn (batch: Switchboard only; the caller leaves it out for the peers). */
  vias: Via[];
  layout: Layout;
  /** `via` batch: the SDK's `maxInFlight`. */
  batchInFlight: number;
  /** After the fixed rates, steps of the search for the highest sustained rate per via (0: none). */
  searchSteps: number;
}

/**
 * Targeted: `users` placed by `opts.layout`; for each of `opts.vias`, each
 * rate for `seconds` of sends from the publisher process to one user each,
 * then up to `opts.searchSteps` more rates searching for the highest
 * sustained one (p99 under `P99_BOUND_MS`, nothing refused or lost).
 */
export async function targeted(fleet: Fleet, c: Cluster, users: number, rates: number[], seconds: number, perPort: number, opts: TargetedOptions, onRate: (r: TargetedResult) => void): Promise<TargetedResult[]> {
  const across = opts.layout === 'across' && c.ports.length > 1;
  const sendPorts = across ? c.ports.slice(1) : c.ports;
  const opened = await connectAll(fleet, c, across ? [c.ports[0]!] : c.ports, users, 'plain', 0);
  const out: TargetedResult[] = [];
  try {
    if (opened.failed > 0) throw new Error(`targeted: ${opened.failed} users failed to connect: ${opened.firstError}`);
    const publish = (via: Via, count: number, rate: number, timeoutMs: number): Promise<PublishReply> =>
      fleet.publisher.ask({ type: 'publish', kind: c.kind, via, batchInFlight: opts.batchInFlight, ports: sendPorts, perPort, users, count, rate }, timeoutMs);
    for (const via of opts.vias) {
      // Unmeasured warm-up per way in: JIT, broker connections, kept-alive sockets.
      const warm = Math.min(500, users);
      await fleet.all(() => ({ type: 'expect', messages: warm, latencies: false }), COMMAND_TIMEOUT_MS);
      await publish(via, warm, 500, COMMAND_TIMEOUT_MS);
      await waitReceived(fleet, warm, DRAIN_MS);
      const done: TargetedResult[] = [];
      const run = async (rate: number, searched: boolean): Promise<void> => {
        const r = { ...(await targetedRate(fleet, c, rate, seconds, (count) => publish(via, count, rate, seconds * 3_000 + 30_000))), via, searched };
        done.push(r);
        out.push(r);
        onRate(r);
      };
      for (const rate of rates) await run(rate, false);
      for (let step = 0; step < opts.searchSteps; step++) {
        const next = nextRate(done);
        if (next === undefined || done.some((t) => t.rate === next)) break;
        await run(next, true);
      }
    }
  } finally {
    await closeAll(fleet);
  }
  return out;
}

/** One rate of the targeted scenario: `rate × seconds` messages that `publish` sends; latency, losses, CPU per message. */
async function targetedRate(fleet: Fleet, c: Cluster, rate: number, seconds: number, publish: (count: number) => Promise<PublishReply>): Promise<Omit<TargetedResult, 'via' | 'searched'>> {
  const count = Math.round(rate * seconds);
  await fleet.all(() => ({ type: 'expect', messages: count, latencies: true }), COMMAND_TIMEOUT_MS);
  // The servers' CPU while nothing is sent (heartbeats, timers, GC of the last phase), to subtract below.
  const idle = await restingCpu(c, IDLE_CPU_WINDOW_MS);
  await stalls(c);
  const read = cpuMeter(c);
  const pub = await publish(count);
  await waitReceived(fleet, pub.sent - pub.failed, DRAIN_MS);
  await sleep(300);
  const spent = read();
  const server = await stalls(c);
  const replies = await fleet.all(() => ({ type: 'collect' }), COMMAND_TIMEOUT_MS);
  let lost = 0;
  const counts = new Uint32Array(count);
  for (const r of replies) r.counts.forEach((v, i) => (counts[i]! += v));
  for (let i = 0; i < pub.sent; i++) if (counts[i] === 0) lost++;
  const cpu = splitCpu(spent, Math.max(1, pub.sent), 1e-3, { ...idle, redis: 0 });
  return {
    rate, seconds, sent: pub.sent, achievedRate: pub.achievedRate, generatorBehindTicks: pub.behindTicks, failed: pub.failed, firstError: pub.firstError,
    delivered: replies.reduce((s, x) => s + x.received, 0), lost,
    latency: quantiles(merged(replies.map((x) => x.latencies))),
    server,
    cpuUsPerMessage: cpu.servers,
    redisCpuUsPerMessage: cpu.redis,
    generatorLoopDelayMaxMs: Math.max(...replies.map((x) => x.loopDelayMaxMs)),
  };
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

