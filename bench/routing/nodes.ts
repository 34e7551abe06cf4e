// Node processes (spawn, stop, membership), CPU time from /proc, and sums
// of Prometheus metrics.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { waitReady } from '../../test/helpers/node-process.js';
import { freePort } from '../../test/helpers/ports.js';
import { BIN, MEMBERSHIP_TIMEOUT_MS, STOP_TIMEOUT_MS } from './settings.js';
import { getJson, sleep } from './util.js';

export interface BenchNode {
  id: string;
  port: number;
  proc: ChildProcess;
  stderr(): string;
}

/** Every node process still running, SIGKILLed if this process exits early. */
const running = new Set<ChildProcess>();

export function killAllNodes(): void {
  for (const p of running) p.kill('SIGKILL');
  running.clear();
}

function exited(proc: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export async function spawnNode(id: string, args: string[]): Promise<BenchNode> {
  const port = await freePort();
  const proc = spawn(process.execPath, [BIN, 'start', ...args, '--port', String(port), '--host', '127.0.0.1', '--node-id', id], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn' },
  });
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  let tail = '';
  proc.stderr?.on('data', (chunk: Buffer) => (tail = (tail + String(chunk)).slice(-4000)));
  try {
    await waitReady(port, proc);
  } catch (err) {
    proc.kill('SIGKILL');
    throw new Error(`node ${id}: ${(err as Error).message}\n${tail}`);
  }
  return { id, port, proc, stderr: () => tail };
}

/** SIGTERM (drain), SIGKILL if it is not gone within `STOP_TIMEOUT_MS`. */
export async function stopNode(node: BenchNode): Promise<void> {
  if (node.proc.exitCode !== null || node.proc.signalCode !== null) return;
  node.proc.kill('SIGTERM');
  if (!(await exited(node.proc, STOP_TIMEOUT_MS))) {
    node.proc.kill('SIGKILL');
    await exited(node.proc, STOP_TIMEOUT_MS);
  }
}

/** Until every node lists exactly `ids` as the live cluster. */
export async function waitMembership(nodes: BenchNode[], ids: string[]): Promise<void> {
  const want = [...ids].sort().join(',');
  const deadline = Date.now() + MEMBERSHIP_TIMEOUT_MS;
  let last = '';
  for (;;) {
    const views = await Promise.all(
      nodes.map(async (n) => (await getJson<{ nodes: Array<{ id: string }> }>(n.port, '/api/nodes')).nodes.map((x) => x.id).sort().join(',')),
    );
    if (views.every((v) => v === want)) return;
    last = views.join(' | ');
    if (Date.now() > deadline) throw new Error(`membership ${want} not agreed within ${MEMBERSHIP_TIMEOUT_MS} ms: ${last}`);
    await sleep(100);
  }
}

const TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU time (user + system) of a process, in ms, from /proc/<pid>/stat fields 14 and 15. */
export function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may itself hold spaces and parentheses.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field k is rest[k - 3].
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / TICKS_PER_S;
}

/** CPU time of the whole machine (every core, steal included), in ms, from the first line of /proc/stat. */
export function machineBusyMs(): number {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: everything but idle and iowait.
  const busy = f.slice(0, 8).reduce((a, b) => a + (b || 0), 0) - (f[3] ?? 0) - (f[4] ?? 0);
  return (busy * 1000) / TICKS_PER_S;
}

/** CPU time of this process (the clients and the publisher), in ms. */
export function benchCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Sum of a Prometheus metric's samples whose labels contain `labels`. */
export function metric(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    if (labels && !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
