/**
 * Server processes the tests spawn (redis-server, nats-server) and the
 * temporary folders they use: all killed and removed when the test process
 * exits or is interrupted, so a failing test leaves nothing behind.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from './wait.js';

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let hooked = false;

function killAllSync(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  killAllSync();
  // Only we listened: re-raise so the process still dies of the signal.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', killAllSync);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

/** Kill `child` when the test process ends, if it is still running then. */
export function track(child: ChildProcess): void {
  hookExit();
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** A fresh temporary folder, removed when the test process ends. */
export function tempDir(prefix: string): string {
  hookExit();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

export function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolves true once `child` has exited, false after `timeoutMs`. */
export function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (!running(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * A server that could not bind its port: another process took it between
 * picking and binding, or its own last life still holds it. Worth another try.
 */
export class BindError extends Error {}

/** Tries at binding before a server start gives up. */
const BIND_ATTEMPTS = 5;

/**
 * Run `attempt` (given its number, from 1) again while it fails with
 * `BindError`, at most `BIND_ATTEMPTS` times, `pauseMs` apart; any other
 * error, or the last `BindError`, is thrown. `attempt` cleans up after itself.
 */
export async function retryBind<T>(attempt: (n: number) => Promise<T>, pauseMs = 0): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!(err instanceof BindError) || n >= BIND_ATTEMPTS) throw err;
      if (pauseMs > 0) await sleep(pauseMs);
    }
  }
}

/** A clean stop: `signal`, then `kill()` when `child` has not exited within `timeoutMs`. */
export async function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals, timeoutMs: number, kill: () => Promise<void>): Promise<void> {
  if (!child || !running(child)) return;
  child.kill(signal);
  if (!(await waitExit(child, timeoutMs))) await kill();
}

/**
 * What every test server offers (redis-server, nats-server, PostgreSQL,
 * Kafka): its folder and the three ways to end or renew it, each of which
 * waits until it is done. What a crash keeps is each server's own (see its
 * interface).
 */
export interface ServerProcess {
  /** The server's folder: its configuration, log and data. */
  dir: string;
  /** SIGKILL, as a crash. Waits until it (and any process of its own) has exited. */
  kill(): Promise<void>;
  /** A clean shutdown, SIGKILL if it takes too long. Waits for the exit. */
  stop(): Promise<void>;
  /** Start again on the same port(s) and data (stopping first if running); waits until it serves. */
  restart(): Promise<void>;
}
