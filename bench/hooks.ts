/**
 * What the backend hooks cost (issue 16): connects and publications with
 * and without a backend to ask, on Switchboard and on Socket.IO doing the
 * same through its own means, in one run:
 *
 *   npm run build && npm run bench -- bench/hooks.ts [--connects 1000] [--connect-rate 200]
 *       [--publications 2500] [--publish-rate 500] [--rounds 1] [--out name|path]
 *
 * One local backend process (bench/lib/servers/hook-backend.ts, plain
 * `node:http`) maps the session cookie `sid=<user>` to its user and allows
 * every publication. Against it, one server process of each kind, each
 * measured without and then with the backend:
 *
 * - Switchboard (`--broker memory`): without, `--insecure` and `?user=`;
 *   with, `--connect-hook <backend>/connect` (the upgrade carries only the
 *   cookie) and `--publish-hook <backend>/publish` for the namespace
 *   `bench` (`publishHook: true`), signed with `--hook-secret` (the backend
 *   checks each signature, as a real one would).
 * - Socket.IO 4 (in-memory adapter, websocket transport): without,
 *   `auth: {user}`; with, an `io.use` middleware that posts the cookie to the
 *   same `/connect`, and a `publish` handler that posts to `/publish` before
 *   it emits (bench/lib/servers/sio-server.ts).
 *
 * Two phases each, the clients in this process:
 * 1. connect: --connects connections at --connect-rate per second, each
 *    with its own user; connect latency (upgrade request → `welcome` or
 *    `connect`), CPU of the server and of the backend per connect;
 * 2. publish: one subscriber, one publisher sending --publications one at
 *    a time at --publish-rate; publish-to-delivery latency, CPU of the
 *    server and of the backend per publication, every delivery counted.
 *
 * CPU is /proc time of the process over the phase (until the last answer
 * plus a short tail), less what it spends at rest over as long. The hook
 * overhead is "with" less "without"; the ratio compares Switchboard's with
 * Socket.IO's. Every loop is bounded in count and time; traffic stays on
 * 127.0.0.1; every process started here is stopped, on failure too.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { io, type Socket } from 'socket.io-client';
import { freePort } from '../test/helpers/ports.js';
import { int, parseFlags, valued } from './lib/flags.js';
import { nodeArgs } from './lib/nodes.js';
import { bundle } from './lib/paths.js';
import { cpuMs, runMain, type Server, stopProcess } from './lib/procs.js';
import { commit, fmt, machine, ratio, resultPath, table, today, writeResult } from './lib/report.js';
import { buildServers, PEER, spawnProbed } from './lib/servers.js';
import { type Quantiles, quantiles } from './lib/stats.js';
import { sleep, waitUntil } from './lib/wait.js';

interface Args {
  connects: number;
  connectRate: number;
  publications: number;
  publishRate: number;
  rounds: number;
  out: string | undefined;
}

const USAGE =
  'npm run bench -- bench/hooks.ts [--connects 1000] [--connect-rate 200] [--publications 2500] [--publish-rate 500] [--rounds 1] [--out name|path]';

const args = parseFlags<Args>(
  process.argv.slice(2),
  { connects: 1000, connectRate: 200, publications: 2500, publishRate: 500, rounds: 1, out: undefined },
  {
    '--connects': valued((a, v, f) => (a.connects = int(f, v, 1, 10_000))),
    '--connect-rate': valued((a, v, f) => (a.connectRate = int(f, v, 1, 5_000))),
    '--publications': valued((a, v, f) => (a.publications = int(f, v, 1, 100_000))),
    '--publish-rate': valued((a, v, f) => (a.publishRate = int(f, v, 1, 10_000))),
    '--rounds': valued((a, v, f) => (a.rounds = int(f, v, 1, 5))),
    '--out': valued((a, v) => (a.out = v)),
  },
  USAGE,
);

type Kind = 'switchboard' | 'socketio';
const KINDS: Kind[] = ['switchboard', 'socketio'];
const LABEL: Record<Kind, string> = { switchboard: 'Switchboard', socketio: 'Socket.IO' };
/** Waits, ms: CPU still counted after a phase's last answer; an unanswered connect or delivery gives up. */
const WAIT = { tail: 500, answer: 15_000 } as const;
const ROOM = 'bench';
/** The key Switchboard signs its hook requests with, and the backend checks them with. */
const HOOK_SECRET = 'bench-hook-secret';
const CHANNEL = `${ROOM}:room`;

interface Phase {
  count: number;
  done: number;
  failed: number;
  firstError?: string;
  latency: Quantiles;
  /** CPU per connect or publication, µs, less the process's resting CPU over as long. */
  serverUs: number;
  backendUs: number;
}

interface Run {
  kind: Kind;
  hooks: boolean;
  round: number;
  connect: Phase;
  publish: Phase;
}

/** A client connection of either kind: it opens (resolving with its connect latency), delivers payloads, publishes and closes. */
interface Client {
  opened: Promise<number>;
  publish(n: number): void;
  close(): void;
}

interface Payload {
  n: number;
  t: number;
}

function switchboardClient(port: number, user: string, hooks: boolean, onData: (p: Payload) => void, subscribe: boolean): Client {
  const t0 = performance.now();
  const url = `ws://127.0.0.1:${port}/ws${hooks ? '' : `?user=${user}`}`;
  const ws = new WebSocket(url, { perMessageDeflate: false, headers: hooks ? { cookie: `sid=${user}` } : {} });
  let id = 0;
  const opened = new Promise<number>((resolve, reject) => {
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => reject(new Error(`upgrade refused with ${res.statusCode}`)));
    ws.on('message', (raw) => {
      const f = JSON.parse(String(raw)) as { type: string; id?: number; data?: Payload; error?: { message: string } };
      if (f.type === 'welcome') {
        if (!subscribe) return resolve(performance.now() - t0);
        ws.send(JSON.stringify({ type: 'subscribe', id: ++id, channel: CHANNEL }));
      } else if (f.type === 'reply' && f.id === 1 && subscribe) {
        if (f.error) reject(new Error(f.error.message));
        else resolve(performance.now() - t0);
      } else if (f.type === 'message' && f.data) onData(f.data);
      else if (f.type === 'ping') ws.send('{"type":"pong"}');
    });
  });
  return {
    opened,
    publish: (n) => ws.send(JSON.stringify({ type: 'publish', id: ++id, channel: CHANNEL, data: { n, t: performance.now() } })),
    close: () => ws.terminate(),
  };
}

function socketIoClient(port: number, user: string, hooks: boolean, onData: (p: Payload) => void, subscribe: boolean): Client {
  const t0 = performance.now();
  const socket: Socket = io(`http://127.0.0.1:${port}`, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    ...(hooks ? { extraHeaders: { cookie: `sid=${user}` } } : {}),
    auth: { user, ...(subscribe ? { room: ROOM } : {}) },
  });
  socket.on('message', (data: Payload) => onData(data));
  const opened = new Promise<number>((resolve, reject) => {
    socket.once('connect', () => resolve(performance.now() - t0));
    socket.once('connect_error', reject);
  });
  return {
    opened,
    publish: (n) => socket.emit('publish', { room: ROOM, data: { n, t: performance.now() } }),
    close: () => socket.disconnect(),
  };
}

const client = (kind: Kind): typeof switchboardClient => (kind === 'switchboard' ? switchboardClient : socketIoClient);

/** Starts the server of `kind` on a free port, with or without the backend at `backendUrl`. */
async function startServer(kind: Kind, hooks: boolean, backendUrl: string, dir: string): Promise<Server> {
  const port = await freePort();
  if (kind === 'socketio') return spawnProbed('socket.io', port, [PEER('sio-server'), String(port), 'local', '1', ...(hooks ? [backendUrl] : [])]);
  const config = join(dir, `config-${hooks}.json`);
  writeFileSync(config, JSON.stringify({ namespaces: { [ROOM]: { history: { size: 0 }, presence: false, publishHook: hooks } } }));
  const common = ['--config', config, '--broker', 'memory', '--insecure', '--max-connections-per-ip-per-second', '0', '--max-handshakes-per-second', '0', '--max-messages-per-second', '100000', '--max-publish-bytes-per-minute', '0', '--max-connections-per-ip', '0'];
  const hookArgs = hooks ? ['--connect-hook', `${backendUrl}/connect`, '--publish-hook', `${backendUrl}/publish`, '--hook-secret', HOOK_SECRET] : [];
  return spawnProbed('switchboard', port, nodeArgs('bench', port, [...common, ...hookArgs]));
}

/** Measures `work` (which returns when its last answer came): CPU of `server` and `backend` per unit, less their resting CPU over as long. */
async function measured(server: Server, backend: Server, units: number, work: () => Promise<void>): Promise<{ serverUs: number; backendUs: number }> {
  const restMs = 1_000;
  const rest0 = [cpuMs(server.proc.pid), cpuMs(backend.proc.pid)] as const;
  await sleep(restMs);
  const rest = [cpuMs(server.proc.pid) - rest0[0], cpuMs(backend.proc.pid) - rest0[1]];
  const t0 = performance.now();
  const c0 = [cpuMs(server.proc.pid), cpuMs(backend.proc.pid)] as const;
  await work();
  await sleep(WAIT.tail);
  const ms = performance.now() - t0;
  const used = [cpuMs(server.proc.pid) - c0[0], cpuMs(backend.proc.pid) - c0[1]];
  const per = (i: number): number => (Math.max(0, used[i]! - (rest[i]! * ms) / restMs) * 1000) / units;
  return { serverUs: per(0), backendUs: per(1) };
}

/** Calls `each(i)` for i in 0 … count-1 at `rate` per second, on schedule (late ticks catch up), bounded by count. */
async function paced(count: number, rate: number, each: (i: number) => void): Promise<void> {
  const t0 = performance.now();
  let i = 0;
  while (i < count) {
    const due = Math.min(count, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
    for (; i < due; i++) each(i);
    await sleep(Math.max(1, 1000 / rate));
  }
}

async function connectPhase(kind: Kind, hooks: boolean, server: Server, backend: Server, round: number): Promise<Phase> {
  const clients: Client[] = [];
  const latencies: number[] = [];
  let failed = 0;
  let firstError: string | undefined;
  const cpu = await measured(server, backend, args.connects, async () => {
    const waits: Array<Promise<void>> = [];
    await paced(args.connects, args.connectRate, (i) => {
      const c = client(kind)(server.port, `r${round}u${i}`, hooks, () => undefined, false);
      clients.push(c);
      waits.push(
        c.opened.then(
          (ms) => void latencies.push(ms),
          (err: unknown) => {
            failed++;
            firstError ??= err instanceof Error ? err.message : String(err);
          },
        ),
      );
    });
    await Promise.race([Promise.all(waits), sleep(WAIT.answer)]);
  });
  for (const c of clients) c.close();
  await sleep(500);
  return { count: args.connects, done: latencies.length, failed, ...(firstError ? { firstError } : {}), latency: quantiles(latencies), ...cpu };
}

async function publishPhase(kind: Kind, hooks: boolean, server: Server, backend: Server, round: number): Promise<Phase> {
  const latencies: number[] = [];
  const seen = new Uint8Array(args.publications);
  let duplicates = 0;
  const onData = (p: Payload): void => {
    if (seen[p.n]) duplicates++;
    seen[p.n] = 1;
    latencies.push(performance.now() - p.t);
  };
  const subscriber = client(kind)(server.port, `r${round}sub`, hooks, onData, true);
  const publisher = client(kind)(server.port, `r${round}pub`, hooks, () => undefined, false);
  await Promise.all([subscriber.opened, publisher.opened]);
  const cpu = await measured(server, backend, args.publications, async () => {
    await paced(args.publications, args.publishRate, (i) => publisher.publish(i));
    await waitUntil(() => latencies.length >= args.publications, WAIT.answer);
  });
  subscriber.close();
  publisher.close();
  const missing = args.publications - seen.reduce((s, v) => s + v, 0);
  const phase: Phase = { count: args.publications, done: latencies.length - duplicates, failed: missing + duplicates, latency: quantiles(latencies), ...cpu };
  if (missing + duplicates > 0) phase.firstError = `${missing} not delivered, ${duplicates} delivered twice`;
  return phase;
}

async function main(): Promise<void> {
  await buildServers();
  const backendScript = await bundle('bench/lib/servers/hook-backend.ts', 'peers-hook-backend');
  const dir = mkdtempSync(join(tmpdir(), 'bench-hooks-'));
  const backendPort = await freePort();
  const backend = await spawnProbed('backend', backendPort, [backendScript, String(backendPort), HOOK_SECRET]);
  const backendUrl = `http://127.0.0.1:${backendPort}`;
  const runs: Run[] = [];
  try {
    for (let round = 1; round <= args.rounds; round++) {
      for (const kind of KINDS) {
        for (const hooks of [false, true]) {
          const server = await startServer(kind, hooks, backendUrl, dir);
          try {
            const connect = await connectPhase(kind, hooks, server, backend, round);
            const publish = await publishPhase(kind, hooks, server, backend, round);
            runs.push({ kind, hooks, round, connect, publish });
            console.log(`${LABEL[kind]} ${hooks ? 'with' : 'without'} hooks, round ${round}: done`);
          } finally {
            await stopProcess(server.proc);
          }
        }
      }
    }
  } finally {
    await stopProcess(backend.proc);
    rmSync(dir, { recursive: true, force: true });
  }
  report(runs);
}

/** The median over rounds of a figure of the runs of `kind` with or without hooks. */
function figure(runs: Run[], kind: Kind, hooks: boolean, pick: (r: Run) => number): number {
  const v = runs.filter((r) => r.kind === kind && r.hooks === hooks).map(pick).sort((a, b) => a - b);
  return v.length ? v[v.length >> 1]! : NaN;
}

function report(runs: Run[]): void {
  const rows = runs.map((r) => [
    `${LABEL[r.kind]} ${r.hooks ? 'with' : 'without'}`,
    String(r.round),
    `${r.connect.done}/${r.connect.count}`,
    fmt(r.connect.serverUs),
    fmt(r.connect.backendUs),
    `${fmt(r.connect.latency.p50, 1)} / ${fmt(r.connect.latency.p99, 1)}`,
    `${r.publish.done}/${r.publish.count}`,
    fmt(r.publish.serverUs),
    fmt(r.publish.backendUs),
    `${fmt(r.publish.latency.p50, 1)} / ${fmt(r.publish.latency.p99, 1)}`,
  ]);
  console.log(`\n${args.connects} connects at ${args.connectRate}/s; ${args.publications} publications at ${args.publishRate}/s, one at a time\n`);
  console.log(
    table(
      ['server, hooks', 'round', 'connected', 'server µs/connect', 'backend µs/connect', 'connect p50 / p99 ms', 'delivered', 'server µs/publish', 'backend µs/publish', 'delivery p50 / p99 ms'],
      rows,
      1,
    ),
  );
  for (const r of runs) {
    for (const [what, p] of [['connect', r.connect], ['publish', r.publish]] as const) {
      if (p.firstError) console.log(`${LABEL[r.kind]} ${r.hooks ? 'with' : 'without'} hooks, ${what}: ${p.failed} failed (${p.firstError})`);
    }
  }
  const overhead = (kind: Kind, pick: (r: Run) => number): number => figure(runs, kind, true, pick) - figure(runs, kind, false, pick);
  const lines: Array<[string, (r: Run) => number]> = [
    ['server CPU per connect, µs', (r) => r.connect.serverUs],
    ['server CPU per publication, µs', (r) => r.publish.serverUs],
    ['connect p99, ms', (r) => r.connect.latency.p99],
    ['delivery p99, ms', (r) => r.publish.latency.p99],
  ];
  // A ratio of two differences means something only when both are positive (latency differences can be noise around 0).
  const overheadRatio = (a: number, b: number): string => (a > 0 && b > 0 ? ratio(a, b) : 'n/a');
  const overheadRows = lines.map(([what, pick]) => {
    const [sb, sio] = [overhead('switchboard', pick), overhead('socketio', pick)];
    return [what, fmt(sb, 1), fmt(sio, 1), overheadRatio(sb, sio)];
  });
  const withRows = lines.map(([what, pick]) => [what, fmt(figure(runs, 'switchboard', true, pick), 1), fmt(figure(runs, 'socketio', true, pick), 1), ratio(figure(runs, 'switchboard', true, pick), figure(runs, 'socketio', true, pick))]);
  console.log('\nWhat asking the backend adds (with − without, median over rounds):\n');
  console.log(table(['', 'Switchboard', 'Socket.IO', 'Switchboard / Socket.IO'], overheadRows));
  console.log('\nWith the backend asked (median over rounds):\n');
  console.log(table(['', 'Switchboard', 'Socket.IO', 'Switchboard / Socket.IO'], withRows));
  const file = writeResult(resultPath(args.out, `hooks-${today()}`, '.json'), JSON.stringify({ args, machine: machine(), ...commit(), runs }, null, 2));
  console.log(`\nresults: ${file}`);
}

runMain(main);
