// The three kinds of server under test, each started as a child process on
// 127.0.0.1 with `--expose-gc` and the probe preloaded (servers/probe.ts),
// so that all are measured the same way from inside: Switchboard nodes
// (`bin/switchboard.js start`), Socket.IO 4 with the Redis adapter
// (servers/sio-server.ts) and bare ws, the floor (servers/ws-server.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeArgs } from './nodes.js';
import { BIN, bundle, OUT } from './paths.js';
import { type Server, spawnServer } from './procs.js';
import { sleep } from './wait.js';

export type Kind = 'switchboard' | 'socketio' | 'ws';
export const KINDS: Kind[] = ['switchboard', 'socketio', 'ws'];
export const LABEL: Record<Kind, string> = { switchboard: 'Switchboard', socketio: 'Socket.IO + redis-adapter', ws: 'bare ws (floor)' };
export const COLOURS: Record<Kind, string> = { switchboard: '#d62728', socketio: '#1f77b4', ws: '#2ca02c' };

export interface Memory {
  heapUsed: number;
  rss: number;
  external: number;
}

/** GC pauses and event-loop delay of a probed process since the last call (see servers/probe.ts). */
export interface Pauses {
  gc: { count: number; totalMs: number; maxMs: number };
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

const PROBE_TIMEOUT_MS = 10_000;
const bundled = (name: string): string => join(OUT, `peers-${name}.mjs`);
/** The bundled peer server `sio-server` or `ws-server`. */
export const PEER = (name: 'sio-server' | 'ws-server'): string => bundled(name);

let probeDir: string | undefined;
function probes(): string {
  if (probeDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'peers-probe-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    probeDir = dir;
  }
  return probeDir;
}

/** Bundles the probe and the two peer servers next to the benchmark's own bundle. */
export async function buildServers(): Promise<void> {
  for (const name of ['probe', 'ws-server', 'sio-server']) await bundle(`bench/lib/servers/${name}.ts`, `peers-${name}`);
}

/** Starts a server process with the probe preloaded; `args` start with the script (a node's BIN or a PEER). */
export function spawnProbed(label: string, port: number, args: string[], readyTimeoutMs?: number): Promise<Server> {
  // PEERS_SERVER_NODE_ARGS: extra Node flags for every server (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p` to profile one).
  const extra = (process.env.PEERS_SERVER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  return spawnServer(label, port, args, { nodeArgs: ['--expose-gc', ...extra, '--import', bundled('probe')], env: { PEERS_PROBE_DIR: probes() }, readyTimeoutMs });
}

const helpOf = new Map<string, string>();
/**
 * Whether the node at `bin` (this checkout's when absent) knows `--flag`: a
 * baseline from before a setting existed is started without it (and has
 * nothing of the kind to turn off).
 */
export function knowsFlag(flag: string, bin = BIN): boolean {
  let help = helpOf.get(bin);
  if (help === undefined) {
    help = execFileSync(process.execPath, [bin, 'start', '--help'], { encoding: 'utf8' });
    helpOf.set(bin, help);
  }
  return help.includes(`--${flag} `);
}

/** `bin/switchboard.js start` arguments of a benchmarked node: Redis broker, no TLS, per-IP and admission limits off; `bin` of this checkout unless given. */
export const switchboardArgs = (redis: string, config: string, port: number, id: string, bin?: string): string[] =>
  nodeArgs(
    id,
    port,
    [
      ...['--config', config, '--broker', redis, '--max-connections-per-ip-per-second', '0', '--max-handshakes-per-second', '0', '--insecure'],
      ...(knowsFlag('max-connections-per-ip', bin) ? ['--max-connections-per-ip', '0'] : []),
    ],
    bin,
  );

/** Signals a probed process and reads the file it writes in answer. */
async function ask<T>(pid: number, signal: NodeJS.Signals, suffix: string): Promise<T> {
  const file = join(probes(), `${pid}${suffix}`);
  rmSync(file, { force: true });
  process.kill(pid, signal);
  const deadline = Date.now() + PROBE_TIMEOUT_MS;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`pid ${pid}: no ${signal} probe answer in ${PROBE_TIMEOUT_MS} ms`);
    await sleep(10);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

/** `process.memoryUsage()` of a probed process (cluster workers inherit the probe), after forced GCs. */
export async function memoryOf(pid: number): Promise<Memory> {
  const m = await ask<Memory & { gc: boolean }>(pid, 'SIGUSR2', '.json');
  if (!m.gc) throw new Error(`pid ${pid}: gc() not exposed`);
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external };
}

/** GC pauses and event-loop delay of a probed process since the last call. */
export const pausesOf = (pid: number): Promise<Pauses> => ask<Pauses>(pid, 'SIGWINCH', '.pauses.json');
