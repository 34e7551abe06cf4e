/**
 * Runs the shipped deploy/haproxy.cfg in a real HAProxy on a free loopback
 * port, with its servers replaced by the test's nodes. Nothing else of the
 * file is changed, except an admin socket added for the test to read which
 * servers HAProxy has in rotation. The process is killed when the test
 * process exits (children.ts), so a failing test leaves nothing behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { running, tempDir, track, waitExit } from './children.js';
import { freePort } from './ports.js';
import { sleep } from './wait.js';

/** /usr/sbin is not always on a non-root PATH. */
export const HAPROXY = existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy';
const SHIPPED = fileURLToPath(new URL('../../deploy/haproxy.cfg', import.meta.url));
const START_TIMEOUT_MS = 10_000;

/** A server line of the backend as HAProxy's admin socket reports it. */
export interface ServerState {
  name: string;
  /** `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (coming up), `MAINT`, `no check`. */
  status: string;
}

export interface Haproxy {
  port: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The backend's servers, named `node1`, `node2`… in the order of the upstream ports. */
  servers(): Promise<ServerState[]>;
  /** Resolves once server `name` reports `status` (exactly, e.g. `UP`); rejects after `timeoutMs`. */
  waitServer(name: string, status: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** The shipped config with `ports` as its servers, `listen` as its bind port, and an admin socket in `dir`. */
export function configFor(ports: number[], listen: number, dir: string): string {
  const shipped = readFileSync(SHIPPED, 'utf8');
  const servers = ports.map((p, i) => `    server node${i + 1} 127.0.0.1:${p}`).join('\n');
  const withServers = shipped.replace(/(?:^ +server \S+ \S+\n)+/m, `${servers}\n`);
  const withBind = withServers.replace(/^( +)bind \S+$/m, `$1bind 127.0.0.1:${listen}`);
  const withSocket = withBind.replace(/^global\n/m, `global\n    stats socket ${join(dir, 'admin.sock')} mode 600 level admin\n`);
  if (withServers === shipped || withBind === withServers || withSocket === withBind) {
    throw new Error('deploy/haproxy.cfg changed shape: update test/helpers/haproxy.ts');
  }
  return withSocket;
}

/** Check a config with `haproxy -c`; throws with HAProxy's output when it is refused. */
export function checkConfig(file: string): string {
  const r = spawnSync(HAPROXY, ['-c', '-f', file], { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run haproxy (${r.error.message}): install the haproxy package (.ci/run does)`);
  if (r.status !== 0) throw new Error(`haproxy -c refused ${file}:\n${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

/** One admin-socket command; resolves with the whole answer (HAProxy closes the socket after it). */
function admin(socketPath: string, command: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let out = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`haproxy admin socket: no answer to "${command}" in ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(`${command}\n`));
    sock.on('data', (d: Buffer) => (out += String(d)));
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** Parse `show stat` CSV into the backend's server rows. */
function parseServers(csv: string): ServerState[] {
  const lines = csv.split('\n').filter((l) => l.length > 0);
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const px = header.indexOf('pxname');
  const sv = header.indexOf('svname');
  const st = header.indexOf('status');
  if (px < 0 || sv < 0 || st < 0) throw new Error(`haproxy show stat: unexpected header ${lines[0] ?? '(none)'}`);
  return lines
    .slice(1)
    .map((l) => l.split(','))
    .filter((cols) => cols[px] === 'switchboard' && cols[sv] !== 'BACKEND' && cols[sv] !== 'FRONTEND')
    .map((cols) => ({ name: cols[sv] ?? '', status: cols[st] ?? '' }));
}

/** Start HAProxy in front of `upstreamPorts`; resolves once it listens and every server is `UP`. */
export async function startHaproxy(upstreamPorts: number[]): Promise<Haproxy> {
  const dir = tempDir('sb-haproxy-');
  const port = await freePort();
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, configFor(upstreamPorts, port, dir));
  checkConfig(file);
  // -db: stay in the foreground, so the test owns the process.
  const proc: ChildProcess = spawn(HAPROXY, ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  track(proc);
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr = (stderr + String(d)).slice(-4000)));
  const socketPath = join(dir, 'admin.sock');

  const servers = async (): Promise<ServerState[]> => parseServers(await admin(socketPath, 'show stat'));
  const waitServer = async (name: string, status: string, timeoutMs = START_TIMEOUT_MS): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      if (!running(proc)) throw new Error(`haproxy exited: ${stderr}`);
      try {
        const s = (await servers()).find((x) => x.name === name);
        if (s?.status === status) return;
        last = s?.status ?? 'missing';
      } catch (err) {
        last = (err as Error).message; // not listening on its socket yet
      }
      if (Date.now() > deadline) throw new Error(`haproxy server ${name} not ${status} within ${timeoutMs} ms (last: ${last})`);
      await sleep(50);
    }
  };
  const stop = async (): Promise<void> => {
    if (!running(proc)) return;
    proc.kill('SIGTERM');
    if (!(await waitExit(proc, 3000))) proc.kill('SIGKILL');
  };

  try {
    for (let i = 0; i < upstreamPorts.length; i++) await waitServer(`node${i + 1}`, 'UP');
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, url: `http://127.0.0.1:${port}`, servers, waitServer, stop };
}
