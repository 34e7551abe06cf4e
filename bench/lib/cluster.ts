// A cluster of one server kind over its own private redis-server (bare ws
// has none): `nodes` Switchboard nodes or Socket.IO servers (bare ws: always
// one), each of `workers` processes sharing its port (Switchboard
// `--workers`, node:cluster for the peers). Memory and CPU are read over
// every process of the cluster, workers included.
import { readdirSync, readFileSync } from 'node:fs';
import { writeConfig } from '../../test/helpers/node-process.js';
import { freePort } from '../../test/helpers/ports.js';
import { type RedisProcess, startRedis } from '../../test/helpers/redis-server.js';
import { postJson } from './http.js';
import { API_KEY } from './paths.js';
import { cpuMs, cpuOfPids, processTree, type Server, stopProcess } from './procs.js';
import { type Kind, knowsFlag, type Memory, memoryOf, pausesOf, PEER, spawnProbed, switchboardArgs } from './servers.js';
import { sleep } from './wait.js';

const READY_TIMEOUT_MS = 60_000;

export interface Cluster {
  kind: Kind;
  servers: Server[];
  ports: number[];
  /** Processes per server (1, or the workers sharing its port). */
  workers: number;
  /** The kind's private redis-server (none for bare ws), so its CPU can be reported beside the servers'. */
  redisPid: number | undefined;
  /** `POST` a room publication through server `i`. */
  publish(i: number, room: string, data: unknown): Promise<void>;
  /** `POST` a message to every socket of `user` through server `i`. */
  send(i: number, user: string, data: unknown): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Socket.IO only: one server with the in-memory adapter and `connectionStateRecovery` (no Redis). */
  memory?: boolean;
  /** Merged into the Switchboard nodes' config file (namespaces, for instance). */
  config?: Record<string, unknown>;
  /** Switchboard only: the `bin/switchboard.js` the nodes run (another, built checkout's); this checkout's by default. */
  bin?: string;
}

/** The redis-server listening on `port` (found by its command line, `redis-server 127.0.0.1:<port>`). */
export function redisPidOf(port: number): number | undefined {
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

/** The HTTP endpoints each kind publishes and sends through. */
function endpoints(kind: Kind, servers: Server[]): Pick<Cluster, 'publish' | 'send'> {
  const port = (i: number): number => servers[Math.min(i, servers.length - 1)]!.port;
  return kind === 'switchboard'
    ? { publish: (i, room, data) => postJson(port(i), '/api/publish', { channel: room, data }), send: (i, user, data) => postJson(port(i), '/api/send', { user, data }) }
    : { publish: (i, room, data) => postJson(port(i), '/publish', { room, data }), send: (i, user, data) => postJson(port(i), '/send', { user, data }) };
}

/** Starts `nodes` servers of `kind` (bare ws: always one), each with `workers` processes. */
export async function startCluster(kind: Kind, nodes: number, workers: number, opts: ClusterOptions = {}): Promise<Cluster> {
  let redis: RedisProcess | undefined;
  const servers: Server[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => stopProcess(s.proc)));
    await redis?.stop();
  };
  const made = (w: number, redisPid: number | undefined): Cluster => ({ kind, servers, ports: servers.map((s) => s.port), workers: w, redisPid, ...endpoints(kind, servers), stop });
  try {
    if (kind === 'ws') {
      const port = await freePort();
      servers.push(await spawnProbed('ws', port, [PEER('ws-server'), String(port), String(workers)], READY_TIMEOUT_MS));
      return made(workers, undefined);
    }
    if (kind === 'socketio' && opts.memory) {
      const port = await freePort();
      servers.push(await spawnProbed('socket.io (memory)', port, [PEER('sio-server'), String(port), 'memory', '1'], READY_TIMEOUT_MS));
      return made(1, undefined);
    }
    redis = await startRedis();
    const url = redis.url;
    const redisPid = redisPidOf(redis.port);
    if (kind === 'switchboard') {
      // Client write quotas off too: a benchmark publisher writes far more than an application's client.
      const quotasOff = knowsFlag('max-publish-bytes-per-minute', opts.bin)
        ? { maxPublishBytesPerMinute: 0, maxUserPublishBytesPerMinute: 0, maxNewChannelsPerMinute: 0, maxUserNewChannelsPerMinute: 0 }
        : {};
      const config = writeConfig({ apiKeys: [API_KEY], limits: { maxMessagesPerSecond: 100_000, ...quotasOff }, ...opts.config });
      // Admission limits off, as for the peers, which have none (switchboardArgs turns off the per-second ones).
      const extra = ['--max-handshakes-in-flight', '0', ...(workers > 1 ? ['--workers', String(workers)] : [])];
      for (let i = 0; i < nodes; i++) {
        const port = await freePort();
        servers.push(await spawnProbed(`switchboard n${i}`, port, [...switchboardArgs(url, config, port, `n${i}`, opts.bin), ...extra], READY_TIMEOUT_MS));
      }
      return made(workers, redisPid);
    }
    for (let i = 0; i < nodes; i++) {
      const port = await freePort();
      servers.push(await spawnProbed(`socket.io n${i}`, port, [PEER('sio-server'), String(port), url, String(workers)], READY_TIMEOUT_MS));
    }
    return made(workers, redisPid);
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Runs `run` on a cluster `start` answers, stopped afterwards whatever happens. */
export async function withCluster<T>(start: () => Promise<Cluster>, run: (c: Cluster) => Promise<T>): Promise<T> {
  const c = await start();
  try {
    return await run(c);
  } finally {
    await c.stop();
  }
}

/** CPU ms of the kind's redis-server so far (0 without one). */
export function redisCpuMs(c: Cluster): number {
  try {
    return c.redisPid === undefined ? 0 : cpuMs(c.redisPid);
  } catch {
    return 0;
  }
}

/** Every Node process of `servers` (workers included); by default the whole cluster's. */
export function pids(c: Cluster, servers: Server[] = c.servers): number[] {
  return servers.flatMap((s) => processTree(s.proc.pid ?? 0)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'node';
    } catch {
      return false;
    }
  });
}

/** CPU ms of every server process of the cluster, by pid (a process that exited is left out). */
export function cpuByPid(c: Cluster): Map<number, number> {
  return cpuOfPids(pids(c));
}

/** CPU ms used between two `cpuByPid` readings, summed over processes present in both. */
export function cpuUsed(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [p, ms] of after) sum += ms - (before.get(p) ?? ms);
  return sum;
}

/** CPU ms of the server processes and of the redis-server, and the wall ms, since a `cpuMeter` started. */
export interface CpuSpent {
  servers: number;
  redis: number;
  ms: number;
}

/** Starts counting the cluster's CPU (every server process, and its redis-server apart); each call of the answer reads what was spent since. */
export function cpuMeter(c: Cluster): () => CpuSpent {
  const servers0 = cpuByPid(c);
  const redis0 = redisCpuMs(c);
  const t0 = performance.now();
  return () => ({ servers: cpuUsed(servers0, cpuByPid(c)), redis: redisCpuMs(c) - redis0, ms: performance.now() - t0 });
}

/** CPU per unit, split as the tables show it: the server processes, their redis-server (0 for bare ws), both. */
export interface CpuSplit {
  servers: number;
  redis: number;
  total: number;
}

/** `spent` less `idle` (CPU ms per ms) over as long, never below 0, divided by `per`, in units of `scale` ms (1e-3: µs). */
export function splitCpu(spent: CpuSpent, per: number, scale: number, idle: CpuSplit = { servers: 0, redis: 0, total: 0 }): CpuSplit {
  const servers = Math.max(0, spent.servers - idle.servers * spent.ms) / per / scale;
  const redis = Math.max(0, spent.redis - idle.redis * spent.ms) / per / scale;
  return { servers, redis, total: servers + redis };
}

/** The cluster's CPU over `ms` of whatever it does unasked (timers, pings, GC), ms per ms: to subtract from a measured phase. */
export async function restingCpu(c: Cluster, ms: number): Promise<CpuSplit> {
  const read = cpuMeter(c);
  await sleep(ms);
  const spent = read();
  return splitCpu(spent, spent.ms, 1);
}

/** Memory summed over the processes of `servers` (by default every server), each read inside it after forced GCs. */
export async function memorySum(c: Cluster, servers: Server[] = c.servers): Promise<Memory & { processes: number }> {
  const list = await Promise.all(pids(c, servers).map(memoryOf));
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

export async function stalls(c: Cluster): Promise<ServerStalls> {
  const list = await Promise.all(pids(c).map((p) => pausesOf(p).catch(() => undefined)));
  const ok = list.filter((x) => x !== undefined);
  return {
    gcMaxMs: Math.max(0, ...ok.map((x) => x.gc.maxMs)),
    gcTotalMs: ok.reduce((s, x) => s + x.gc.totalMs, 0),
    loopDelayMaxMs: Math.max(0, ...ok.map((x) => x.loopDelayMaxMs)),
  };
}
