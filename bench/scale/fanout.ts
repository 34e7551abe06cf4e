// Broadcast fan-out, three ways, each with the subscribers in the load
// generators, all in one room on one server, every delivery counted at the
// clients (exactly once per subscriber per publication):
// - broadcast: publications in bursts (HTTP, back to back), pauses between;
//   server CPU per delivery, deliveries/s;
// - steady: publications one at a time at each fixed rate (HTTP, each at
//   its own moment), for a fixed time; CPU per delivery of the servers and
//   of their redis-server, less what they spend with nothing published;
//   publish-to-delivery p50/p99 over a bounded sample;
// - fan-out maximum: a big room (100k by default, over as many server
//   processes and generators as 15000 sockets each need), publications with
//   a few in flight at once; deliveries per second at the clients, server
//   CPU per delivery, and how the machine's cores were shared between the
//   servers, Redis, the generators and everything else.
import { cpus } from 'node:os';
import { type Cluster, cpuMeter, type CpuSpent, type CpuSplit, pids, restingCpu, type ServerStalls, splitCpu, stalls } from '../lib/cluster.js';
import { paced, pooledCount } from '../lib/pool.js';
import { cpuMs, machineBusyMs, ownCpuMs } from '../lib/procs.js';
import { merged, type Quantiles, quantilesOfSorted as quantiles } from '../lib/stats.js';
import { sleep } from '../lib/wait.js';
import type { Fleet } from './fleet.js';
import { nowMs, ROOM } from './protocol.js';
import { closeAll, COMMAND_TIMEOUT_MS, connectAll, DRAIN_MS, pooledCalls, SETTLE_MS, waitReceived } from './scenarios.js';

/** Publish-to-delivery samples kept per phase at most (over all generators), so that a big fan-out ships a bounded sample. */
const LATENCY_SAMPLES = 200_000;
/** Deliveries per second the drain wait allows for, at the least: an overloaded server gets that long to catch up. */
const SLOWEST_DRAIN_RATE = 20_000;
/** The drain wait, at most. */
const MOST_DRAIN_MS = 600_000;
/** Steady rates: publications under way at once, at most (one at a time unless the server answers slower than the rate). */
const STEADY_IN_FLIGHT = 64;
/** Before each steady rate, how long the cluster's CPU with nothing published is measured. */
const RESTING_MS = 1_000;

/** What one broadcast phase delivered, counted at the clients. */
interface Delivered {
  publications: number;
  failedPublications: number;
  expected: number;
  delivered: number;
  lost: number;
  duplicates: number;
  /** Connections that did not get every publication exactly once. */
  connectionsOff: number;
  /** From the first publication to the last delivery, s. */
  seconds: number;
  deliveriesPerSecond: number;
  /** Publication → delivery, over every delivery or a sample of one in `latencyEvery`. */
  latency: Quantiles;
  latencyEvery: number;
  /** The receiving generators' worst event-loop delay, ms. */
  generatorLoopDelayMaxMs: number;
  /** CPU of the servers and their redis-server from the first publication to the end of the drain. */
  spent: CpuSpent;
}

/**
 * One broadcast phase on connected subscribers: `publish` sends
 * `publications` (numbered from 0) and answers how many failed; waits for
 * every delivery (bounded), then collects the counts. `alsoMeter` is
 * started and read with the CPU meter (other processes' CPU over the same window).
 */
async function broadcastPhase(fleet: Fleet, c: Cluster, subscribers: number, publications: number, publish: () => Promise<number>, alsoMeter?: () => () => void): Promise<Delivered> {
  const expected = publications * subscribers;
  const latencyEvery = Math.max(1, Math.ceil(expected / LATENCY_SAMPLES));
  await fleet.all(() => ({ type: 'expect', messages: publications, latencies: true, latencyEvery }), COMMAND_TIMEOUT_MS);
  const read = cpuMeter(c);
  const readAlso = alsoMeter?.();
  const began = nowMs();
  const failed = await publish();
  const drainMs = Math.min(MOST_DRAIN_MS, Math.max(DRAIN_MS, (expected / SLOWEST_DRAIN_RATE) * 1000));
  await waitReceived(fleet, (publications - failed) * subscribers, drainMs);
  await sleep(300); // late duplicates
  const spent = read();
  readAlso?.();
  const replies = await fleet.all(() => ({ type: 'collect' }), COMMAND_TIMEOUT_MS);
  const counts = new Float64Array(publications);
  for (const r of replies) r.counts.forEach((v, i) => (counts[i]! += v));
  let lost = 0;
  let duplicates = 0;
  for (const v of counts) {
    lost += Math.max(0, subscribers - v);
    duplicates += Math.max(0, v - subscribers);
  }
  const delivered = replies.reduce((s, r) => s + r.received, 0);
  const seconds = (Math.max(...replies.map((r) => r.lastAt)) - began) / 1000;
  return {
    publications, failedPublications: failed, expected, delivered, lost, duplicates,
    connectionsOff: replies.reduce((s, r) => s + r.connectionsOff, 0),
    seconds, deliveriesPerSecond: delivered / seconds,
    latency: quantiles(merged(replies.map((r) => r.latencies))), latencyEvery,
    generatorLoopDelayMaxMs: Math.max(...replies.map((r) => r.loopDelayMaxMs)),
    spent,
  };
}

/** Connects `subscribers` to the room on server 0, runs `body`, closes them whatever happens. */
async function withRoom<T>(fleet: Fleet, c: Cluster, subscribers: number, body: () => Promise<T>): Promise<T> {
  const opened = await connectAll(fleet, c, [c.ports[0]!], subscribers, 'room', 0);
  try {
    if (opened.failed > 0) throw new Error(`${opened.failed} of ${subscribers} subscribers failed to connect: ${opened.firstError}`);
    await sleep(SETTLE_MS);
    return await body();
  } finally {
    await closeAll(fleet);
  }
}

export interface BroadcastResult extends Omit<Delivered, 'spent'> {
  subscribers: number;
  bursts: number;
  burst: number;
  pauseMs: number;
  /** CPU of every server process of the kind, µs per delivery. */
  cpuUsPerDelivery: number;
  /** CPU of the kind's redis-server over the same window, µs per delivery (0 for bare ws). */
  redisCpuUsPerDelivery: number;
}

/** Broadcast: `subscribers` in one room on server 0; `bursts` × `burst` publications through server 0, each burst back to back, then `pauseMs`. */
export async function broadcast(fleet: Fleet, c: Cluster, subscribers: number, bursts: number, burst: number, pauseMs: number): Promise<BroadcastResult> {
  return withRoom(fleet, c, subscribers, async () => {
    const d = await broadcastPhase(fleet, c, subscribers, bursts * burst, async () => {
      let failed = 0;
      for (let b = 0; b < bursts; b++) {
        const r = await pooledCalls(b * burst, burst, (n) => c.publish(0, ROOM, { n, t: nowMs() }));
        failed += r.failed;
        if (r.firstError) console.log(`  publication failed: ${r.firstError}`);
        if (b < bursts - 1) await sleep(pauseMs);
      }
      return failed;
    });
    const { spent, ...rest } = d;
    const per = Math.max(1, d.delivered);
    return { ...rest, subscribers, bursts, burst, pauseMs, cpuUsPerDelivery: (spent.servers * 1000) / per, redisCpuUsPerDelivery: (spent.redis * 1000) / per };
  });
}

export interface SteadyResult extends Omit<Delivered, 'spent'> {
  subscribers: number;
  /** Publications per second asked for, and what the publisher achieved. */
  rate: number;
  achievedRate: number;
  /** CPU µs per delivery from the first publication to the end of the drain, less the cluster's CPU with nothing published over as long. */
  cpuUsPerDelivery: CpuSplit;
  /** The cluster's CPU with nothing published just before the rate, ms per second (what was subtracted). */
  idleCpuMsPerSecond: CpuSplit;
  /** Server GC pauses and event-loop delay during the rate (every process). */
  server: ServerStalls;
}

/**
 * Steady: `subscribers` in one room on server 0; for each rate,
 * `min(rate × seconds, maxPublications)` publications through server 0,
 * one at a time at that rate; `onRate` hears each as it ends.
 */
export async function steady(fleet: Fleet, c: Cluster, subscribers: number, rates: number[], seconds: number, maxPublications: number, onRate: (r: SteadyResult) => void): Promise<SteadyResult[]> {
  return withRoom(fleet, c, subscribers, async () => {
    const out: SteadyResult[] = [];
    for (const rate of rates) {
      const publications = Math.max(1, Math.min(maxPublications, Math.round(rate * seconds)));
      const idle = await restingCpu(c, RESTING_MS);
      await stalls(c);
      let sending = 0;
      const d = await broadcastPhase(fleet, c, subscribers, publications, async () => {
        const r = await paced(publications, rate, STEADY_IN_FLIGHT, DRAIN_MS, (n) => c.publish(0, ROOM, { n, t: nowMs() }));
        if (r.firstError) console.log(`  ${r.failed} publications failed: ${r.firstError}`);
        sending = r.seconds;
        return r.failed;
      });
      const { spent, ...rest } = d;
      const r: SteadyResult = {
        ...rest, subscribers, rate, achievedRate: publications / Math.max(sending, 1e-3),
        cpuUsPerDelivery: splitCpu(spent, Math.max(1, d.delivered), 1e-3, idle),
        idleCpuMsPerSecond: { servers: idle.servers * 1000, redis: idle.redis * 1000, total: idle.total * 1000 },
        server: await stalls(c),
      };
      out.push(r);
      onRate(r);
    }
    return out;
  });
}

/** CPU over a window as % of one core (the machine has `cores` × 100 %). */
export interface CoreShares {
  servers: number;
  redis: number;
  /** The receiving load generators together. */
  generators: number;
  /** This process (the publisher of the fan-out: HTTP publications). */
  coordinator: number;
  /** The whole machine (every process, other work included), from /proc/stat. */
  machine: number;
  /** The machine less the four above: other work on the machine. */
  other: number;
  cores: number;
}

export interface FanoutResult extends Omit<Delivered, 'spent'> {
  connections: number;
  /** Server processes (workers of the one server), and receiving generators. */
  serverProcesses: number;
  generators: number;
  /** Publications under way at once. */
  inFlight: number;
  /** CPU µs per delivery of the servers, their redis-server, both (nothing subtracted). */
  cpuUsPerDelivery: CpuSplit;
  /** The generators' CPU µs per delivery: what receiving costs the clients' side. */
  generatorCpuUsPerDelivery: number;
  /** How the cores were shared over the phase. */
  corePercent: CoreShares;
}

/**
 * Fan-out maximum: `size` connections in one room on server 0 (the cluster
 * has processes enough for them); for each of `inFlights`, `publications`
 * through server 0 with that many under way at once; the delivery rate at
 * the clients and the CPU of every side over each phase.
 */
export async function fanout(fleet: Fleet, c: Cluster, size: number, publications: number, inFlights: number[], onPhase: (f: FanoutResult) => void): Promise<FanoutResult[]> {
  return withRoom(fleet, c, size, async () => {
    const out: FanoutResult[] = [];
    for (const inFlight of inFlights) {
      const f = await fanoutPhase(fleet, c, size, publications, inFlight);
      out.push(f);
      onPhase(f);
    }
    return out;
  });
}

/** One fan-out phase on the connected room: `publications` with `inFlight` under way at once. */
async function fanoutPhase(fleet: Fleet, c: Cluster, size: number, publications: number, inFlight: number): Promise<FanoutResult> {
  const genPids = fleet.gens.map((g) => g.proc.pid);
  const genCpu = (): number => genPids.reduce<number>((s, p) => s + cpuMs(p), 0);
  let shares = { generators: 0, coordinator: 0, machine: 0 };
  const meterOthers = (): (() => void) => {
    const g0 = genCpu();
    const o0 = ownCpuMs();
    const m0 = machineBusyMs();
    return () => (shares = { generators: genCpu() - g0, coordinator: ownCpuMs() - o0, machine: machineBusyMs() - m0 });
  };
  const d = await broadcastPhase(fleet, c, size, publications, async () => {
    const r = await pooledCount(0, publications, inFlight, (n) => c.publish(0, ROOM, { n, t: nowMs() }));
    if (r.firstError) console.log(`  ${r.failed} publications failed: ${r.firstError}`);
    return r.failed;
  }, meterOthers);
  const { spent, ...rest } = d;
  const pct = (ms: number): number => (ms / spent.ms) * 100;
  const known = spent.servers + spent.redis + shares.generators + shares.coordinator;
  const per = Math.max(1, d.delivered);
  return {
    ...rest, connections: size, serverProcesses: pids(c).length, generators: fleet.gens.length, inFlight,
    cpuUsPerDelivery: splitCpu(spent, per, 1e-3),
    generatorCpuUsPerDelivery: (shares.generators * 1000) / per,
    corePercent: {
      servers: pct(spent.servers), redis: pct(spent.redis), generators: pct(shares.generators), coordinator: pct(shares.coordinator),
      machine: pct(shares.machine), other: pct(Math.max(0, shares.machine - known)), cores: cpus().length,
    },
  };
}
