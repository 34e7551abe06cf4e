// The servers under test at scale, each kind over its own private
// redis-server (bare ws has none): Switchboard nodes (`bin/switchboard.js
// start`, `--workers W` when the build has it), Socket.IO servers with the
// Redis adapter, both as `nodes` separate servers (the targeted scenario
// needs 3), and bare ws as one server. Holding 100k sockets takes several
// processes (20000 open files each), so each server may run `workers`
// processes sharing its port (Socket.IO and ws: node:cluster). Memory and
// CPU are summed over every process of a kind, workers included.
import { readdirSync, readFileSync } from 'node:fs';
import { build } from 'esbuild';
import { join } from 'node:path';
import { waitReady, writeConfig } from '../../test/helpers/node-process.js';
import { freePort } from '../../test/helpers/ports.js';
import { type RedisProcess, startRedis } from '../../test/helpers/redis-server.js';
import { cpuMs } from '../routing/nodes.js';
import { API_KEY, ROOT } from '../routing/settings.js';
import { http } from '../routing/util.js';
import { buildPeers, type Kind, type Memory, memoryOf, PEER, pausesOf, type Server, spawnServer, stopServer, switchboardArgs } from '../peers/servers.js';
import { REPLAY_CHANNEL } from './protocol.js';

/** History kept on the replay channel (Switchboard), enough for any `--missed`. */
export const REPLAY_HISTORY = 10_000;
const READY_TIMEOUT_MS = 60_000;

export interface ScaleCluster {
  kind: Kind;
  servers: Server[];
  ports: number[];
  /** Processes per server (1, or the workers sharing its port). */
  workers: number;
  /** The kind's private redis-server (none for bare ws), so its CPU can be reported beside the servers'. */
  redisPid: number | undefined;
  /** `POST` a room publication through server `i` (broadcast, replay). */
  publish(i: number, room: string, data: unknown): Promise<void>;
  stop(): Promise<void>;
}

/** Bundles the peers, the probe and the load generator next to the benchmark. */
export async function buildAll(): Promise<void> {
  await buildPeers();
  await build({ entryPoints: [join(ROOT, 'bench', 'scale', 'loadgen.ts')], outfile: join(ROOT, '.bench-out', 'scale-loadgen.mjs'), bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning' });
}

/** `pid` and all its descendants (workers, and their children), from /proc. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** The redis-server listening on `port` (found by its command line, `redis-server 127.0.0.1:<port>`). */
function redisPidOf(port: number): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.startsWith('redis-server') && cmd.includes(`:${port}`)) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** CPU ms of the kind's redis-server so far (0 without one). */
export function redisCpuMs(c: ScaleCluster): number {
  try {
    return c.redisPid === undefined ? 0 : cpuMs(c.redisPid);
  } catch {
    return 0;
  }
}

/** Every server process of the cluster that runs Node (workers included). */
export function pids(c: ScaleCluster): number[] {
  return c.servers.flatMap((s) => processTree(s.proc.pid ?? 0)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'node';
    } catch {
      return false;
    }
  });
}

/** CPU ms of every server process of the cluster, by pid (a process that exited is left out). */
export function cpuByPid(c: ScaleCluster): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of pids(c)) {
    try {
      out.set(p, cpuMs(p));
    } catch {
      // exited
    }
  }
  return out;
}

/** CPU ms used between two `cpuByPid` readings, summed over processes present in both. */
export function cpuUsed(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [p, ms] of after) sum += ms - (before.get(p) ?? ms);
  return sum;
}

/** Memory summed over every server process, each read inside it after forced GCs. */
export async function memorySum(c: ScaleCluster): Promise<Memory & { processes: number }> {
  const list = await Promise.all(pids(c).map(memoryOf));
  return {
    heapUsed: list.reduce((s, m) => s + m.heapUsed, 0),
    rss: list.reduce((s, m) => s + m.rss, 0),
    external: list.reduce((s, m) => s + m.external, 0),
    processes: list.length,
  };
}

/** Stalls of the server processes since the last call: the longest GC pause, all GC time, the worst event-loop delay. */
export interface ServerStalls {
  gcMaxMs: number;
  gcTotalMs: number;
  loopDelayMaxMs: number;
}

export async function stalls(c: ScaleCluster): Promise<ServerStalls> {
  const list = await Promise.all(pids(c).map((p) => pausesOf(p).catch(() => undefined)));
  const ok = list.filter((x) => x !== undefined);
  return {
    gcMaxMs: Math.max(0, ...ok.map((x) => x.gc.maxMs)),
    gcTotalMs: ok.reduce((s, x) => s + x.gc.totalMs, 0),
    loopDelayMaxMs: Math.max(0, ...ok.map((x) => x.loopDelayMaxMs)),
  };
}

async function post(port: number, path: string, body: unknown): Promise<void> {
  const res = await http('POST', port, path, JSON.stringify(body));
  if (res.status !== 200) throw new Error(`POST :${port}${path} → ${res.status} ${res.text}`);
}

const ready = (p: number, proc: Parameters<typeof waitReady>[1]): Promise<void> => waitReady(p, proc, READY_TIMEOUT_MS);

/**
 * Starts `nodes` servers of `kind` (bare ws: always one), each with
 * `workers` processes; Socket.IO with `memory` true runs one server with the
 * in-memory adapter and `connectionStateRecovery` (the recovery scenario).
 */
export async function startScale(kind: Kind, nodes: number, workers: number, opts: { memory?: boolean } = {}): Promise<ScaleCluster> {
  let redis: RedisProcess | undefined;
  const servers: Server[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map(stopServer));
    await redis?.stop();
  };
  try {
    if (kind === 'ws') {
      const port = await freePort();
      servers.push(await spawnServer('ws', [PEER('ws-server'), String(port), String(workers)], ready, port));
      const s = servers[0]!;
      return { kind, servers, ports: [port], workers, redisPid: undefined, publish: (_i, room, data) => post(s.port, '/publish', { room, data }), stop };
    }
    if (kind === 'socketio' && opts.memory) {
      const port = await freePort();
      servers.push(await spawnServer('socket.io (memory)', [PEER('sio-server'), String(port), 'memory', '1'], ready, port));
      const s = servers[0]!;
      return { kind, servers, ports: [port], workers: 1, redisPid: undefined, publish: (_i, room, data) => post(s.port, '/publish', { room, data }), stop };
    }
    redis = await startRedis();
    const url = redis.url;
    const redisPid = redisPidOf(redis.port);
    if (kind === 'switchboard') {
      const config = writeConfig({
        apiKeys: [API_KEY],
        limits: { maxMessagesPerSecond: 100_000 },
        namespaces: { [REPLAY_CHANNEL.split(':')[0]!]: { history: { size: REPLAY_HISTORY, ttl: 600 } } },
      });
      // Admission limits off, as for the peers, which have none (switchboardArgs turns off the per-second ones).
      const extra = ['--max-handshakes-in-flight', '0', ...(workers > 1 ? ['--workers', String(workers)] : [])];
      for (let i = 0; i < nodes; i++) {
        const port = await freePort();
        servers.push(await spawnServer(`switchboard n${i}`, [...switchboardArgs(url, config, port, `n${i}`), ...extra], ready, port));
      }
      return { kind, servers, ports: servers.map((s) => s.port), workers, redisPid, publish: (i, room, data) => post(servers[i]!.port, '/api/publish', { channel: room, data }), stop };
    }
    for (let i = 0; i < nodes; i++) {
      const port = await freePort();
      servers.push(await spawnServer(`socket.io n${i}`, [PEER('sio-server'), String(port), url, String(workers)], ready, port));
    }
    return { kind, servers, ports: servers.map((s) => s.port), workers, redisPid, publish: (i, room, data) => post(servers[i]!.port, '/publish', { room, data }), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
