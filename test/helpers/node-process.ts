/**
 * Switchboard nodes as real processes (`bin/switchboard.js start`, built
 * into dist/ by `npm run build`), for tests that kill one with SIGKILL or
 * freeze it with SIGSTOP. Loopback only; every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import { sleep } from './wait.js';

const BIN = fileURLToPath(new URL('../../bin/switchboard.js', import.meta.url));

export interface NodeProcess {
  id: string;
  port: number;
  proc: ChildProcess;
  /** `http://127.0.0.1:<port>` + path. */
  url(path?: string): string;
  /** `ws://127.0.0.1:<port>/ws?` + query. */
  ws(query?: string): string;
  /** The last lines the node wrote to stderr (for failure messages). */
  stderr(): string;
  /** SIGKILL, resolved once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (drain), resolved once the process has exited or after `timeoutMs` (then SIGKILL). */
  stop(timeoutMs?: number): Promise<void>;
}

/** A config file (JSON) in a fresh temporary folder; returns its path. */
export function writeConfig(config: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'sb-node-'));
  const file = join(dir, 'switchboard.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

/** Resolves once `GET /readyz` answers 200; rejects after `timeoutMs` or when the process exits. */
export async function waitReady(port: number, proc?: ChildProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`node on ${port} exited with ${proc.exitCode}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) })).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`node on ${port} did not become ready within ${timeoutMs} ms`);
    await sleep(50);
  }
}

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

/**
 * Start `switchboard start <args> --port <port> --host 127.0.0.1 --node-id <id>` and wait until it is ready.
 * The port is `fixedPort`, or a free one: pass the old port to restart a node where a load balancer expects it.
 */
export async function startNodeProcess(
  id: string,
  args: string[],
  env: Record<string, string> = {},
  fixedPort?: number,
): Promise<NodeProcess> {
  const port = fixedPort ?? (await freePort());
  const proc = spawn(process.execPath, [BIN, 'start', ...args, '--port', String(port), '--host', '127.0.0.1', '--node-id', id], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn', ...env },
  });
  let tail = '';
  proc.stderr?.on('data', (chunk: Buffer) => {
    tail = (tail + String(chunk)).slice(-4000);
  });
  const node: NodeProcess = {
    id,
    port,
    proc,
    url: (path = '') => `http://127.0.0.1:${port}${path}`,
    ws: (query = '') => `ws://127.0.0.1:${port}/ws?${query}`,
    stderr: () => tail,
    kill: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited(proc);
    },
    stop: async (timeoutMs = 10_000) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      await exited(proc);
      clearTimeout(timer);
    },
  };
  try {
    await waitReady(port, proc);
  } catch (err) {
    await node.kill();
    throw new Error(`${(err as Error).message}\n${tail}`);
  }
  return node;
}
