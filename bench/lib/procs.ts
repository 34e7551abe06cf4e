// The child processes a benchmark starts (nodes, peer servers, load
// generators, client processes, CPU hogs): each is tracked so that
// `killAll` can SIGKILL whatever is left when a run fails or is
// interrupted. Also CPU time and process trees, read from /proc.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { waitReady } from '../../test/helpers/node-process.js';

const STOP_TIMEOUT_MS = 10_000;
const running = new Set<ChildProcess>();

/** Tracks `proc` until it exits; answers it. */
export function track<P extends ChildProcess>(proc: P): P {
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  return proc;
}

/** SIGKILLs every tracked process still running (on exit or failure). */
export function killAll(): void {
  for (const p of running) p.kill('SIGKILL');
  running.clear();
}

/** Resolves true once `proc` has exited, false after `timeoutMs`. */
export function exited(proc: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** SIGTERM (a node drains), SIGKILL if it is not gone within `STOP_TIMEOUT_MS`. */
export async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  if (!(await exited(proc, STOP_TIMEOUT_MS))) {
    proc.kill('SIGKILL');
    await exited(proc, STOP_TIMEOUT_MS);
  }
}

/** A server process under test: its port, the process, the tail of its stderr. */
export interface Server {
  port: number;
  proc: ChildProcess;
  stderr(): string;
}

export interface SpawnOptions {
  /** Node flags before `args` (`--expose-gc`, `--import probe`). */
  nodeArgs?: string[];
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}

/** Starts `node … args` that listens on `port`, tracked, and waits for its `/readyz`; on failure it is killed and the error carries its stderr. */
export async function spawnServer(label: string, port: number, args: string[], opts: SpawnOptions = {}): Promise<Server> {
  const proc = track(
    spawn(process.execPath, [...(opts.nodeArgs ?? []), ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn', ...opts.env },
    }),
  );
  let tail = '';
  proc.stderr?.on('data', (c: Buffer) => (tail = (tail + String(c)).slice(-4000)));
  try {
    await waitReady(port, proc, opts.readyTimeoutMs);
  } catch (err) {
    proc.kill('SIGKILL');
    throw new Error(`${label}: ${(err as Error).message}\n${tail}`);
  }
  return { port, proc, stderr: () => tail };
}

/** Starts `n` busy loops on the CPU (other work on a busy machine); each ends after `maxMs` on its own. Answers a stop. */
export function startHogs(n: number, maxMs: number): () => void {
  const procs = Array.from({ length: n }, () => track(spawn(process.execPath, ['-e', `const end = Date.now() + ${maxMs}; while (Date.now() < end);`], { stdio: 'ignore' })));
  return () => {
    for (const p of procs) p.kill('SIGKILL');
  };
}

let ticks: number | undefined;
/** Clock ticks per second of /proc's CPU times, asked once when first needed. */
const ticksPerS = (): number => (ticks ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100);

/** CPU time (user + system) of a process, in ms, from /proc/<pid>/stat fields 14 and 15. */
export function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may itself hold spaces and parentheses.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field k is rest[k - 3].
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / ticksPerS();
}

/** CPU time of the whole machine (every core, steal included), in ms, from the first line of /proc/stat. */
export function machineBusyMs(): number {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: everything but idle and iowait.
  const busy = f.slice(0, 8).reduce((a, b) => a + (b || 0), 0) - (f[3] ?? 0) - (f[4] ?? 0);
  return (busy * 1000) / ticksPerS();
}

/** CPU time of this process, in ms. */
export function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
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

/** CPU ms of each of `pids`, by pid, from /proc (one that exits while read is left out). */
export function cpuOfPids(pids: Iterable<number>): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of pids) {
    try {
      out.set(p, cpuMs(p));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** CPU ms of `pid` and each of its descendants, by pid: a server made of many processes, as PostgreSQL's. */
export function treeCpuMs(pid: number): Map<number, number> {
  return cpuOfPids(processTree(pid));
}

/** Run a benchmark's `main`, then exit; on failure, kill every process it started first. */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      killAll();
      console.error(err);
      process.exit(1);
    },
  );
}
