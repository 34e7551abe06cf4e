/**
 * How does Switchboard compare with its peers, measured in the same run on
 * the same machine?
 *
 *   npm run build && npm run bench -- bench/peers.ts [--servers switchboard,socketio,ws] [--idle 5000]
 *       [--clients 1000] [--messages 200] [--broadcast-rate 50] [--users 500] [--rates 100,500,2000]
 *       [--seconds 5] [--warmup 200] [--out name]
 *
 * Servers, each in child processes on 127.0.0.1 started with `--expose-gc`
 * and a probe preloaded (bench/peers/probe.ts), over a private redis-server
 * per server kind:
 * 1. Switchboard: two `bin/switchboard.js start` nodes (`--broker redis://…`,
 *    `--insecure`, admission limits off), default routing and namespaces;
 * 2. Socket.IO 4 with @socket.io/redis-adapter, two servers, websocket
 *    transport only, a room per user, `io.to(room).emit`;
 * 3. bare `ws`, one process with in-memory maps, no broker: the floor.
 * Publications go over keep-alive HTTP (Switchboard's `/api/send` and
 * `/api/publish`; the peers get equivalent `/send` and `/publish` endpoints).
 *
 * Measurements (clients in this process; server A holds them):
 * - idle: open --idle connections to A; heap used and RSS per connection
 *   from `process.memoryUsage()` inside A after forced GCs, before and
 *   after; the time to open them (100 at once).
 * - broadcast: --clients clients in one room on A, --messages publications
 *   through A at --broadcast-rate; delivered count (must be clients ×
 *   messages) and A's CPU (/proc/<pid>/stat) per 1000 deliveries.
 * - latency: --users users on A, sends to one user each through B at each
 *   of --rates for --seconds; p50/p99 of publish-to-delivery (the payload
 *   carries `performance.now()` taken before the request; same process,
 *   same clock) and losses. For bare ws, A and B are the same process.
 *
 * Writes bench/results/peers-<date>.json and peers-<date>.svg (p99 against
 * rate). Every loop is bounded in count and every wait in time; every
 * process started here is stopped, on failure too.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { ROOT } from './routing/settings.js';
import { agent } from './routing/util.js';
import { intFlag, serversFlag } from './peers/flags.js';
import { broadcast, idle, latency } from './peers/measure.js';
import { broadcastTable, idleTable, type KindResult, latencyTable, svgPlot } from './peers/report.js';
import { buildPeers, type Kind, KINDS, killAll, LABEL, startCluster } from './peers/servers.js';

interface Args {
  servers: Kind[];
  idle: number;
  clients: number;
  messages: number;
  broadcastRate: number;
  users: number;
  rates: number[];
  seconds: number;
  warmup: number;
  out: string | undefined;
}

const positiveInt = (flag: string, v: string, max: number): number => intFlag(flag, v, 1, max);

function parseArgs(argv: string[]): Args {
  const a: Args = { servers: [...KINDS], idle: 5000, clients: 1000, messages: 200, broadcastRate: 50, users: 500, rates: [100, 500, 2000], seconds: 5, warmup: 200, out: undefined };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = (argv[i] ?? '').split('=', 2) as [string, string | undefined];
    const v = inline ?? argv[++i] ?? '';
    switch (flag) {
      case '--servers':
        a.servers = serversFlag(v);
        break;
      case '--idle': a.idle = positiveInt(flag, v, 50_000); break;
      case '--clients': a.clients = positiveInt(flag, v, 20_000); break;
      case '--messages': a.messages = positiveInt(flag, v, 10_000); break;
      case '--broadcast-rate': a.broadcastRate = positiveInt(flag, v, 10_000); break;
      case '--users': a.users = positiveInt(flag, v, 20_000); break;
      case '--rates': a.rates = v.split(',').map((r) => positiveInt(flag, r, 20_000)); break;
      case '--seconds': a.seconds = positiveInt(flag, v, 120); break;
      case '--warmup': a.warmup = positiveInt(flag, v, 10_000); break;
      case '--out': a.out = v; break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  return a;
}

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim().split('\n')[0] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function pkgVersion(name: string): string {
  try {
    return (JSON.parse(execFileSync('node', ['-p', `JSON.stringify(require('${name}/package.json'))`], { cwd: ROOT, encoding: 'utf8' })) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const command = `npm run bench -- bench/peers.ts ${process.argv.slice(2).join(' ')}`.trim();
  const machine = {
    cpu: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
    memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    redis: version('redis-server', ['--version']),
    socketio: pkgVersion('socket.io'),
    redisAdapter: pkgVersion('@socket.io/redis-adapter'),
    ws: pkgVersion('ws'),
    /** 1-minute load average at the start; others' work on this shared machine makes the figures noisy. */
    loadStart: +(loadavg()[0] ?? 0).toFixed(2),
    loadEnd: NaN,
  };
  console.log(`# ${command}`);
  console.log(`# ${JSON.stringify(machine)}`);
  await buildPeers();
  const began = Date.now();
  const results: KindResult[] = [];
  for (const kind of args.servers) {
    const cluster = await startCluster(kind);
    const r: KindResult = { kind };
    try {
      console.log(`${LABEL[kind]}: idle ${args.idle} connections`);
      r.idle = await idle(cluster, args.idle);
      console.log(`${LABEL[kind]}: broadcast ${args.clients} × ${args.messages}`);
      r.broadcast = await broadcast(cluster, args.clients, args.messages, args.broadcastRate);
      console.log(`${LABEL[kind]}: targeted latency, ${args.users} users on A, sends through B`);
      r.latency = await latency(cluster, args.users, args.rates, args.seconds, args.warmup);
    } finally {
      await cluster.stop();
    }
    results.push(r);
    console.log(`  (${((Date.now() - began) / 1000).toFixed(0)} s so far)`);
  }
  machine.loadEnd = +(loadavg()[0] ?? 0).toFixed(2);
  console.log(`# load average (1 min): ${machine.loadStart} at the start, ${machine.loadEnd} at the end, on ${cpus().length} cores`);
  const text = [
    `## Idle connections (${args.idle} to one server process; memory inside it after forced GC)`,
    idleTable(results),
    '',
    `## Broadcast (${args.clients} clients in one room on one server, ${args.messages} publications at ${args.broadcastRate}/s)`,
    broadcastTable(results),
    '',
    `## Targeted latency (${args.users} users on server A, sends through server B, ${args.seconds} s per rate; ws: one process)`,
    latencyTable(results),
  ].join('\n');
  console.log(`\n${text}`);
  const date = new Date().toISOString().slice(0, 10);
  const name = args.out ?? `peers-${date}`;
  const dir = `${ROOT}bench/results`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/${name}.json`, `${JSON.stringify({ command, date: new Date().toISOString(), machine, args, results, tables: text }, null, 2)}\n`);
  writeFileSync(`${dir}/${name}.svg`, svgPlot(results, `p99 latency, targeted sends across nodes (${args.seconds} s per rate)`));
  console.log(`\nwrote bench/results/${name}.json and .svg`);
}

try {
  await main();
} finally {
  killAll();
  agent.destroy();
}
