// Command-line flags of bench/scale.ts, with defaults small enough for a
// run of a few minutes; the big run is `--idle 100000`. The in-process
// scenarios (memory, broadcast-cpu, cross-node: what bench/peers.ts used to
// measure), the cost scenarios (connect, idle-cpu) and the message-cost
// ones (steady, fanout) run only when `--scenarios` names them.
import { choices, type Flag, int, ints, parseFlags, valued } from '../lib/flags.js';
import { type Kind, KINDS } from '../lib/servers.js';
import { MAX_SOCKETS_PER_GEN } from './fleet.js';
import { type Via, VIAS } from './protocol.js';
import { type Layout, LAYOUTS } from './scenarios.js';

export const SCENARIOS = ['idle', 'broadcast', 'targeted', 'recovery', 'memory', 'broadcast-cpu', 'cross-node', 'connect', 'idle-cpu', 'steady', 'fanout'] as const;
export type Scenario = (typeof SCENARIOS)[number];
/** What runs without `--scenarios`. */
const DEFAULT_SCENARIOS: Scenario[] = ['idle', 'broadcast', 'targeted', 'recovery'];

export interface Args {
  servers: Kind[];
  /** Scenario 1: idle connections to one server, at `connectRate` new connections per second. */
  idle: number;
  connectRate: number;
  /** Processes of the idle server (Switchboard `--workers`, node:cluster for the peers); default: enough for 15000 each. */
  idleWorkers: number;
  /** Load-generator processes; default: enough for 15000 sockets each, at least 2. */
  gens: number;
  /** Servers per kind for broadcast, targeted and recovery (bare ws: always one). */
  nodes: number;
  /** Scenario 2. */
  subscribers: number;
  bursts: number;
  burst: number;
  burstPauseMs: number;
  /** Scenario 3. */
  users: number;
  rates: number[];
  seconds: number;
  /**
   * Publishing connections per server (32), the same for every kind. A
   * Switchboard connection has at most 1000 publishes at the broker at once
   * (more get `rate_limited`); before commit 9ae3ba9 it had one, and one
   * connection sustained only about 1/RTT sends per second.
   */
  publishersPerNode: number;
  /** Targeted: how the publisher sends, each in turn (batch: Switchboard only), where users and sends go, the SDK's `maxInFlight` for batch, and search steps for the highest sustained rate after `rates`. */
  via: Via[];
  layout: Layout;
  batchInFlight: number;
  searchSteps: number;
  /** Steady broadcast (fanout.ts): `subscribers` in one room, publications one at a time at each rate for `steadySeconds`, at most `steadyMaxPublications` per rate. */
  steadyRates: number[];
  steadySeconds: number;
  steadyMaxPublications: number;
  /** Fan-out maximum: `fanoutSize` connections in one room on one server of `fanoutWorkers` processes (0: enough for 15000 each), `fanoutPublications` with each of `fanoutInFlight` at once in turn. */
  fanoutSize: number;
  fanoutPublications: number;
  fanoutInFlight: number[];
  fanoutWorkers: number;
  /** Switchboard's `--write-delay` (ms; 0, the default, leaves it out): this checkout's nodes and a baseline that knows it. */
  writeDelay: number;
  /** Scenario 4. */
  replayClients: number;
  missed: number;
  /** In-process scenarios: idle connections to one server (memory inside it). */
  memoryConnections: number;
  /** Clients in one room, publications at a fixed rate (CPU per 1000 deliveries). */
  cpuClients: number;
  cpuMessages: number;
  cpuRate: number;
  /** Users on server A, sends through server B at each rate for `crossSeconds`, after `crossWarmup` unmeasured. */
  crossUsers: number;
  crossRates: number[];
  crossSeconds: number;
  crossWarmup: number;
  /** What a connection costs (cost.ts), on `connectNodes` servers of each kind (bare ws: one). */
  connectNodes: number;
  /** Connections per connect phase; the phases: each of `connectRates`, then unpaced with `connectInFlight` opening at once (0: no such phase). */
  connectCount: number;
  connectRates: number[];
  connectInFlight: number;
  /** Connections opened and closed unmeasured before the first phase (0: none). */
  connectWarmup: number;
  /** Idle CPU: a fresh cluster per size, its connections opened `connectInFlight` at once (0: 500 per generator), then `idleCpuSeconds` left alone. */
  idleCpuSizes: number[];
  idleCpuSeconds: number;
  /** The scenarios that run: `--scenarios` less `--skip`. */
  scenarios: Scenario[];
  skip: Scenario[];
  /** A name under bench/results, or a path (holding a `/`) without extension. */
  out: string | undefined;
  /** Another built checkout of Switchboard whose nodes run idle, broadcast, memory and broadcast-cpu too (see baseline.ts). */
  baseline: string | undefined;
}

const USAGE = `npm run bench -- bench/scale.ts [--servers ${KINDS.join(',')}] [--scenarios ${SCENARIOS.join(',')}] [--skip …] [--baseline <checkout>] [--out name|path] [scenario flags]`;

type F = Flag<Args>;
const num = (set: (a: Args, n: number) => void, min: number, max: number): F => valued((a, v, flag) => set(a, int(flag, v, min, max)));
const nums = (set: (a: Args, n: number[]) => void, min: number, max: number): F => valued((a, v, flag) => set(a, ints(flag, v, min, max)));

const FLAGS: Record<string, F> = {
  '--servers': valued((a, v, flag) => (a.servers = choices(flag, v, KINDS))),
  '--scenarios': valued((a, v, flag) => (a.scenarios = choices(flag, v, SCENARIOS))),
  '--skip': valued((a, v, flag) => (a.skip = choices(flag, v, SCENARIOS))),
  '--idle': num((a, n) => (a.idle = n), 1, 200_000),
  '--connect-rate': num((a, n) => (a.connectRate = n), 1, 50_000),
  '--idle-workers': num((a, n) => (a.idleWorkers = n), 1, 32),
  '--gens': num((a, n) => (a.gens = n), 1, 32),
  '--nodes': num((a, n) => (a.nodes = n), 1, 8),
  '--subscribers': num((a, n) => (a.subscribers = n), 1, 15_000),
  '--bursts': num((a, n) => (a.bursts = n), 1, 1000),
  '--burst': num((a, n) => (a.burst = n), 1, 1000),
  '--burst-pause-ms': num((a, n) => (a.burstPauseMs = n), 0, 60_000),
  '--users': num((a, n) => (a.users = n), 1, 50_000),
  '--rates': nums((a, n) => (a.rates = n), 1, 50_000),
  '--seconds': num((a, n) => (a.seconds = n), 1, 120),
  '--publishers-per-node': num((a, n) => (a.publishersPerNode = n), 1, 64),
  '--via': valued((a, v, flag) => (a.via = choices(flag, v, VIAS))),
  '--layout': valued((a, v, flag) => {
    const [layout, ...more] = choices(flag, v, LAYOUTS);
    if (layout === undefined || more.length > 0) throw new Error(`${flag}: one of ${LAYOUTS.join(', ')}, got "${v}"`);
    a.layout = layout;
  }),
  '--batch-in-flight': num((a, n) => (a.batchInFlight = n), 1, 256),
  '--search-steps': num((a, n) => (a.searchSteps = n), 0, 10),
  '--steady-rates': nums((a, n) => (a.steadyRates = n), 1, 10_000),
  '--steady-seconds': num((a, n) => (a.steadySeconds = n), 1, 120),
  '--steady-max-publications': num((a, n) => (a.steadyMaxPublications = n), 1, 100_000),
  '--fanout-size': num((a, n) => (a.fanoutSize = n), 1, 200_000),
  '--fanout-publications': num((a, n) => (a.fanoutPublications = n), 1, 10_000),
  '--fanout-in-flight': nums((a, n) => (a.fanoutInFlight = n), 1, 64),
  '--fanout-workers': num((a, n) => (a.fanoutWorkers = n), 0, 32),
  '--write-delay': num((a, n) => (a.writeDelay = n), 0, 100),
  '--replay-clients': num((a, n) => (a.replayClients = n), 1, 50_000),
  '--missed': num((a, n) => (a.missed = n), 1, 10_000),
  '--memory-connections': num((a, n) => (a.memoryConnections = n), 1, 50_000),
  '--cpu-clients': num((a, n) => (a.cpuClients = n), 1, 20_000),
  '--cpu-messages': num((a, n) => (a.cpuMessages = n), 1, 10_000),
  '--cpu-rate': num((a, n) => (a.cpuRate = n), 1, 10_000),
  '--cross-users': num((a, n) => (a.crossUsers = n), 1, 20_000),
  '--cross-rates': nums((a, n) => (a.crossRates = n), 1, 20_000),
  '--cross-seconds': num((a, n) => (a.crossSeconds = n), 1, 120),
  '--cross-warmup': num((a, n) => (a.crossWarmup = n), 1, 10_000),
  '--connect-nodes': num((a, n) => (a.connectNodes = n), 1, 8),
  '--connect-count': num((a, n) => (a.connectCount = n), 1, 100_000),
  '--connect-rates': nums((a, n) => (a.connectRates = n), 1, 50_000),
  '--connect-in-flight': num((a, n) => (a.connectInFlight = n), 0, 5_000),
  '--connect-warmup': num((a, n) => (a.connectWarmup = n), 0, 100_000),
  '--idle-cpu-sizes': nums((a, n) => (a.idleCpuSizes = n), 1, 200_000),
  '--idle-cpu-seconds': num((a, n) => (a.idleCpuSeconds = n), 1, 600),
  '--out': valued((a, v) => (a.out = v)),
  '--baseline': valued((a, v) => (a.baseline = v)),
};

export function parseArgs(argv: string[]): Args {
  const a = parseFlags<Args>(argv, {
    servers: [...KINDS], idle: 3000, connectRate: 1000, idleWorkers: 0, gens: 0, nodes: 3,
    subscribers: 1000, bursts: 10, burst: 50, burstPauseMs: 500,
    users: 3000, rates: [1000, 2000, 5000], seconds: 5, publishersPerNode: 32,
    via: ['ws'], layout: 'spread', batchInFlight: 4, searchSteps: 0,
    steadyRates: [10, 100, 1000], steadySeconds: 3, steadyMaxPublications: 1000,
    fanoutSize: 10_000, fanoutPublications: 20, fanoutInFlight: [1, 4, 16], fanoutWorkers: 0, writeDelay: 0,
    replayClients: 1000, missed: 200,
    memoryConnections: 5000, cpuClients: 1000, cpuMessages: 200, cpuRate: 50,
    crossUsers: 500, crossRates: [100, 500, 2000], crossSeconds: 5, crossWarmup: 200,
    connectNodes: 2, connectCount: 5000, connectRates: [500, 1000, 2000], connectInFlight: 50, connectWarmup: 1000, idleCpuSizes: [10_000, 100_000], idleCpuSeconds: 60,
    scenarios: DEFAULT_SCENARIOS, skip: [], out: undefined, baseline: undefined,
  }, FLAGS, USAGE);
  a.scenarios = a.scenarios.filter((s) => !a.skip.includes(s));
  const most = Math.max(a.idle, a.subscribers, a.users, a.replayClients, a.scenarios.includes('connect') ? Math.max(a.connectCount, a.connectWarmup) : 0, a.scenarios.includes('idle-cpu') ? Math.max(...a.idleCpuSizes) : 0, a.scenarios.includes('fanout') ? a.fanoutSize : 0);
  if (a.fanoutWorkers === 0) a.fanoutWorkers = Math.ceil(a.fanoutSize / MAX_SOCKETS_PER_GEN);
  if (a.gens === 0) a.gens = Math.max(2, Math.ceil(most / MAX_SOCKETS_PER_GEN));
  if (a.idleWorkers === 0) a.idleWorkers = Math.ceil(a.idle / MAX_SOCKETS_PER_GEN);
  if (Math.ceil(most / a.gens) > MAX_SOCKETS_PER_GEN) throw new Error(`--gens ${a.gens}: ${most} sockets need at least ${Math.ceil(most / MAX_SOCKETS_PER_GEN)} generators`);
  return a;
}

