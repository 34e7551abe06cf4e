// What a connection costs (issue 14): two scenarios on a cluster of each
// kind (Switchboard nodes over one Redis, Socket.IO servers with the Redis
// adapter, one bare ws server), the clients in the load generators, each
// connection in one room as in the broadcast scenario (Switchboard: its
// personal channel plus a `subscribe`; Socket.IO: a room joined at connect;
// ws: a room in the query). Each is bounded in count and time.
// - connect: `count` connections at each fixed rate, then as fast as the
//   generators go with a bounded number opening at once; connect latency
//   p50/p99, and CPU per connect of the servers and of their redis-server;
// - idle CPU: `size` connections held open and left alone for a window long
//   enough for every periodic job (pings every 25 s by default; before issue
//   14 Switchboard also refreshed presence every 10 s); CPU of the
//   servers and of their redis-server as % of a core and µs per connection
//   per minute.
import { loadavg } from 'node:os';
import { type Cluster, cpuMeter, type CpuSplit, pids, restingCpu, type ServerStalls, splitCpu, stalls } from '../lib/cluster.js';
import { type Quantiles, quantilesOfSorted as quantiles } from '../lib/stats.js';
import { sleep } from '../lib/wait.js';
import type { Fleet } from './fleet.js';
import { nowMs } from './protocol.js';
import { closeAll, connectAll } from './scenarios.js';

/**
 * Waits, ms. `tail`: after the last connect, CPU still counts (work a server
 * does after its reply: a deferred write, a pipelined batch). `resting`:
 * before each connect phase, the cluster's CPU with no clients is measured
 * for this long, to subtract from the phase's. `settle`: after the idle
 * connections opened, before the window (the connects' own work and GC end).
 */
const WAIT_MS = { tail: 1_000, resting: 3_000, settle: 5_000 } as const;

export interface ConnectPhase {
  /** New connections per second asked for; 0: as fast as `inFlight` allows. */
  rate: number;
  /** Connections opening at once over the fleet, at most; undefined in the fixed-rate phases (500 per generator there, the rate is the limit). */
  inFlight: number | undefined;
  count: number;
  opened: number;
  failed: number;
  firstError?: string;
  seconds: number;
  achievedRate: number;
  /** Upgrade request → ready (Switchboard `welcome`, Socket.IO `connect`, ws `open`), ms. */
  connect: Quantiles;
  /** CPU µs per opened connection from the first connect to `WAIT_MS.tail` after the last, less the cluster's CPU with no clients over as long. */
  cpuUsPerConnect: CpuSplit;
  /**
   * Seconds each connection was open within the CPU window, on average: the
   * window also holds the servers' per-connection periodic work (presence
   * refresh, pings) for that long, which the idle-cpu scenario prices apart.
   */
  heldSecondsPerConnect: number;
  /** The cluster's CPU with no clients just before the phase, ms per second (what was subtracted). */
  idleCpuMsPerSecond: CpuSplit;
  /** Server GC pauses and event-loop delay during the phase (every process), and the generators' worst loop delay: which side stalled. */
  server: ServerStalls;
  generatorLoopDelayMaxMs: number;
  /** The 1-minute load average at the phase's end: other work on the machine. */
  load1: number;
}

export interface IdleCpuResult {
  connections: number;
  opened: number;
  failed: number;
  firstError?: string;
  /** Node processes of the cluster (servers and their workers). */
  serverProcesses: number;
  windowSeconds: number;
  /** CPU over the window as % of one core. */
  corePercent: CpuSplit;
  /** CPU over the window, µs per open connection per minute. */
  usPerConnectionMinute: CpuSplit;
  /** The 1, 5 and 15-minute load averages at the window's start and end. */
  loadStart: number[];
  loadEnd: number[];
}

const loads = (): number[] => loadavg().map((x) => +x.toFixed(2));

/** One connect phase: `count` connections over every server of `c` at `phase.rate`, at most `phase.inFlight` opening at once; closed afterwards. */
async function connectPhase(fleet: Fleet, c: Cluster, count: number, phase: Pick<ConnectPhase, 'rate' | 'inFlight'>): Promise<ConnectPhase> {
  const idle = await restingCpu(c, WAIT_MS.resting);
  await stalls(c);
  const read = cpuMeter(c);
  try {
    const r = await connectAll(fleet, c, c.ports, count, 'room', phase.rate, phase.inFlight);
    await sleep(WAIT_MS.tail);
    const spent = read();
    const end = nowMs();
    return {
      ...phase, count, opened: r.opened, failed: r.failed, firstError: r.firstError, seconds: r.seconds, achievedRate: r.opened / r.seconds,
      connect: quantiles(r.latencies),
      cpuUsPerConnect: splitCpu(spent, Math.max(1, r.opened), 1e-3, idle),
      heldSecondsPerConnect: (r.opened * end - r.openedAtSum) / 1000 / Math.max(1, r.opened),
      idleCpuMsPerSecond: { servers: idle.servers * 1000, redis: idle.redis * 1000, total: idle.total * 1000 },
      server: await stalls(c),
      generatorLoopDelayMaxMs: r.generatorLoopDelayMaxMs,
      load1: loads()[0] ?? NaN,
    };
  } finally {
    await closeAll(fleet);
  }
}

/**
 * Connect: `warmup` connections opened and closed unmeasured (the servers'
 * code compiled, their pools filled, so that the first phase is not charged
 * for it), then a phase at each of `rates`, then one unpaced with at most
 * `inFlight` opening at once (none when 0); `onPhase` hears each as it ends.
 */
export async function connectCost(fleet: Fleet, c: Cluster, count: number, rates: number[], inFlight: number, warmup: number, onPhase: (p: ConnectPhase) => void): Promise<ConnectPhase[]> {
  if (warmup > 0) {
    try {
      await connectAll(fleet, c, c.ports, warmup, 'room', 0, inFlight || undefined);
    } finally {
      await closeAll(fleet);
    }
  }
  const phases = [...rates.map((rate) => ({ rate, inFlight: undefined })), ...(inFlight > 0 ? [{ rate: 0, inFlight }] : [])];
  const out: ConnectPhase[] = [];
  for (const phase of phases) {
    const p = await connectPhase(fleet, c, count, phase);
    out.push(p);
    onPhase(p);
  }
  return out;
}

/**
 * Idle CPU: `size` connections over every server of `c`, opened as fast as
 * they go with at most `inFlight` at once (undefined: 500 per generator),
 * then `seconds` left alone.
 */
export async function idleCpu(fleet: Fleet, c: Cluster, size: number, inFlight: number | undefined, seconds: number): Promise<IdleCpuResult> {
  try {
    const r = await connectAll(fleet, c, c.ports, size, 'room', 0, inFlight);
    await sleep(WAIT_MS.settle);
    const loadStart = loads();
    const read = cpuMeter(c);
    await sleep(seconds * 1000);
    const spent = read();
    const n = Math.max(1, r.opened);
    return {
      connections: size, opened: r.opened, failed: r.failed, firstError: r.firstError,
      serverProcesses: pids(c).length,
      windowSeconds: spent.ms / 1000,
      corePercent: splitCpu(spent, spent.ms, 1e-2),
      usPerConnectionMinute: splitCpu(spent, n * (spent.ms / 60_000), 1e-3),
      loadStart, loadEnd: loads(),
    };
  } finally {
    await closeAll(fleet);
  }
}
