// Command-line flags of bench/scale.ts, with defaults small enough for a
// run of a few minutes; the big run is `--idle 100000`.
import { intFlag, serversFlag } from '../peers/flags.js';
import { type Kind, KINDS } from '../peers/servers.js';
import { MAX_SOCKETS_PER_GEN } from './fleet.js';

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
  /** Scenario 4. */
  replayClients: number;
  missed: number;
  skip: string[];
  out: string | undefined;
}

const SCENARIOS = ['idle', 'broadcast', 'targeted', 'recovery'];

const int = intFlag;

export function parseArgs(argv: string[]): Args {
  const a: Args = {
    servers: [...KINDS], idle: 3000, connectRate: 1000, idleWorkers: 0, gens: 0, nodes: 3,
    subscribers: 1000, bursts: 10, burst: 50, burstPauseMs: 500,
    users: 3000, rates: [1000, 2000, 5000], seconds: 5, publishersPerNode: 32,
    replayClients: 1000, missed: 200, skip: [], out: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = (argv[i] ?? '').split('=', 2) as [string, string | undefined];
    const v = inline ?? argv[++i] ?? '';
    switch (flag) {
      case '--servers':
        a.servers = serversFlag(v);
        break;
      case '--skip':
        a.skip = v.split(',').map((s) => {
          if (!SCENARIOS.includes(s)) throw new Error(`--skip: unknown "${s}" (known: ${SCENARIOS.join(', ')})`);
          return s;
        });
        break;
      case '--idle': a.idle = int(flag, v, 1, 200_000); break;
      case '--connect-rate': a.connectRate = int(flag, v, 1, 50_000); break;
      case '--idle-workers': a.idleWorkers = int(flag, v, 1, 32); break;
      case '--gens': a.gens = int(flag, v, 1, 32); break;
      case '--nodes': a.nodes = int(flag, v, 1, 8); break;
      case '--subscribers': a.subscribers = int(flag, v, 1, 15_000); break;
      case '--bursts': a.bursts = int(flag, v, 1, 1000); break;
      case '--burst': a.burst = int(flag, v, 1, 1000); break;
      case '--burst-pause-ms': a.burstPauseMs = int(flag, v, 0, 60_000); break;
      case '--users': a.users = int(flag, v, 1, 50_000); break;
      case '--rates': a.rates = v.split(',').map((r) => int(flag, r, 1, 50_000)); break;
      case '--seconds': a.seconds = int(flag, v, 1, 120); break;
      case '--publishers-per-node': a.publishersPerNode = int(flag, v, 1, 64); break;
      case '--replay-clients': a.replayClients = int(flag, v, 1, 50_000); break;
      case '--missed': a.missed = int(flag, v, 1, 10_000); break;
      case '--out': a.out = v; break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  const most = Math.max(a.idle, a.subscribers, a.users, a.replayClients);
  if (a.gens === 0) a.gens = Math.max(2, Math.ceil(most / MAX_SOCKETS_PER_GEN));
  if (a.idleWorkers === 0) a.idleWorkers = Math.ceil(a.idle / MAX_SOCKETS_PER_GEN);
  if (Math.ceil(most / a.gens) > MAX_SOCKETS_PER_GEN) throw new Error(`--gens ${a.gens}: ${most} sockets need at least ${Math.ceil(most / MAX_SOCKETS_PER_GEN)} generators`);
  return a;
}
