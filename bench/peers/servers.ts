// The servers under test, each a child process on 127.0.0.1 started as
// `node --expose-gc --import probe.mjs …` (see probe.ts): Switchboard
// nodes (`bin/switchboard.js start`), Socket.IO servers, the bare ws floor.
// One `Cluster` per kind: server A holds the clients, B takes the
// publications (for the ws floor, one process is both). Every process
// started here is SIGKILLed by `killAll` if the run fails.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { waitReady, writeConfig } from '../../test/helpers/node-process.js';
import { freePort } from '../../test/helpers/ports.js';
import { type RedisProcess, startRedis } from '../../test/helpers/redis-server.js';
import { API_KEY, BIN, ROOT } from '../routing/settings.js';
import { http, sleep } from '../routing/util.js';

export type Kind = 'switchboard' | 'socketio' | 'ws';
export const KINDS: Kind[] = ['switchboard', 'socketio', 'ws'];
export const LABEL: Record<Kind, string> = { switchboard: 'Switchboard', socketio: 'Socket.IO + redis-adapter', ws: 'bare ws (floor)' };

export interface Server {
  port: number;
  proc: ChildProcess;
  stderr(): string;
}

export interface Memory {
  heapUsed: number;
  rss: number;
  external: number;
}

export interface Cluster {
  kind: Kind;
  a: Server;
  b: Server;
  /** Deliver `data` to every socket of `user` (through B). */
  send(user: string, data: unknown): Promise<void>;
  /** Deliver `data` to every socket in `room` (through A). */
  publish(room: string, data: unknown): Promise<void>;
  stop(): Promise<void>;
}

const OUT = join(ROOT, '.bench-out');
const PROBE = join(OUT, 'peers-probe.mjs');
const PROBE_DIR = mkdtempSync(join(tmpdir(), 'peers-probe-'));
const PROBE_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const running = new Set<ChildProcess>();

/** Bundles the probe and the two peer servers next to the benchmark's own bundle. */
export async function buildPeers(): Promise<void> {
  const here = join(ROOT, 'bench', 'peers');
  for (const name of ['probe', 'ws-server', 'sio-server']) {
    await build({ entryPoints: [join(here, `${name}.ts`)], outfile: join(OUT, `peers-${name}.mjs`), bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning' });
  }
}

export function killAll(): void {
  for (const p of running) p.kill('SIGKILL');
  running.clear();
  rmSync(PROBE_DIR, { recursive: true, force: true });
}

export async function spawnServer(label: string, args: string[], ready: (port: number, proc: ChildProcess) => Promise<void>, port: number): Promise<Server> {
  // PEERS_SERVER_NODE_ARGS: extra Node flags for every server (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p` to profile one).
  const extra = (process.env.PEERS_SERVER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const proc = spawn(process.execPath, ['--expose-gc', ...extra, '--import', PROBE, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PEERS_PROBE_DIR: PROBE_DIR, SWITCHBOARD_LOG_LEVEL: 'warn' },
  });
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  let tail = '';
  proc.stderr?.on('data', (c: Buffer) => (tail = (tail + String(c)).slice(-4000)));
  try {
    await ready(port, proc);
  } catch (err) {
    proc.kill('SIGKILL');
    throw new Error(`${label}: ${(err as Error).message}\n${tail}`);
  }
  return { port, proc, stderr: () => tail };
}

export async function stopServer(s: Server): Promise<void> {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const gone = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS);
    s.proc.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  s.proc.kill('SIGTERM');
  if (!(await gone)) s.proc.kill('SIGKILL');
}

/** `process.memoryUsage()` of a server, read inside it after forced GCs (see probe.ts). */
export function memory(s: Server): Promise<Memory> {
  return memoryOf(s.proc.pid ?? 0);
}

/** `process.memoryUsage()` of any process started with the probe preloaded (cluster workers inherit it), after forced GCs. */
export async function memoryOf(pid: number): Promise<Memory> {
  const file = join(PROBE_DIR, `${pid}.json`);
  rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + PROBE_TIMEOUT_MS;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`pid ${pid}: no memory probe answer in ${PROBE_TIMEOUT_MS} ms`);
    await sleep(20);
  }
  const m = JSON.parse(readFileSync(file, 'utf8')) as Memory & { gc: boolean };
  if (!m.gc) throw new Error(`pid ${pid}: gc() not exposed`);
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external };
}

/** GC pauses and event-loop delay of a probed process since the last call (see probe.ts). */
export interface Pauses {
  gc: { count: number; totalMs: number; maxMs: number };
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

export async function pausesOf(pid: number): Promise<Pauses> {
  const file = join(PROBE_DIR, `${pid}.pauses.json`);
  rmSync(file, { force: true });
  process.kill(pid, 'SIGWINCH');
  const deadline = Date.now() + PROBE_TIMEOUT_MS;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`pid ${pid}: no pause probe answer in ${PROBE_TIMEOUT_MS} ms`);
    await sleep(10);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as Pauses;
}

async function post(port: number, path: string, body: unknown): Promise<void> {
  const res = await http('POST', port, path, JSON.stringify(body));
  if (res.status !== 200) throw new Error(`POST :${port}${path} → ${res.status} ${res.text}`);
}

export const switchboardArgs = (redis: string, config: string, port: number, id: string): string[] => [
  BIN, 'start', '--config', config, '--broker', redis, '--port', String(port), '--host', '127.0.0.1', '--node-id', id,
  '--max-connections-per-ip-per-second', '0', '--max-handshakes-per-second', '0', '--insecure',
];

export async function startCluster(kind: Kind): Promise<Cluster> {
  let redis: RedisProcess | undefined;
  const servers: Server[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map(stopServer));
    await redis?.stop();
  };
  try {
    if (kind === 'ws') {
      const port = await freePort();
      const s = await spawnServer('ws', [PEER('ws-server'), String(port)], (p, proc) => waitReady(p, proc), port);
      servers.push(s);
      return { kind, a: s, b: s, send: (user, data) => post(s.port, '/send', { user, data }), publish: (room, data) => post(s.port, '/publish', { room, data }), stop };
    }
    redis = await startRedis();
    const url = redis.url;
    if (kind === 'switchboard') {
      const config = writeConfig({ apiKeys: [API_KEY], limits: { maxMessagesPerSecond: 100_000 } });
      for (const id of ['a', 'b']) {
        const port = await freePort();
        servers.push(await spawnServer(`switchboard ${id}`, switchboardArgs(url, config, port, id), (p, proc) => waitReady(p, proc), port));
      }
      const [a, b] = servers as [Server, Server];
      return { kind, a, b, send: (user, data) => post(b.port, '/api/send', { user, data }), publish: (room, data) => post(a.port, '/api/publish', { channel: room, data }), stop };
    }
    for (const id of ['a', 'b']) {
      const port = await freePort();
      servers.push(await spawnServer(`socket.io ${id}`, [PEER('sio-server'), String(port), url], (p, proc) => waitReady(p, proc), port));
    }
    const [a, b] = servers as [Server, Server];
    return { kind, a, b, send: (user, data) => post(b.port, '/send', { user, data }), publish: (room, data) => post(a.port, '/publish', { room, data }), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export const PEER = (name: string): string => join(OUT, `peers-${name}.mjs`);
