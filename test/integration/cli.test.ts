/**
 * The `switchboard` command as users run it: `node bin/switchboard.js …`
 * from the repository root, on the built tree (dist/). Checks exit codes,
 * the one-line stderr of every configuration problem, and a real node that
 * starts, answers /healthz and drains on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'switchboard.js');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const TMP = mkdtempSync(join(tmpdir(), 'switchboard-cli-'));
const children = new Set<ChildProcess>();

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(TMP, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment without any SWITCHBOARD_* variable of the test runner, plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SWITCHBOARD_')) env[name] = value;
  return { ...env, ...extra };
}

function spawnCli(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

/** Runs the CLI to its end; fails after `ms`. */
async function run(args: string[], env: Record<string, string> = {}, ms = 10_000): Promise<Run> {
  const { child, done } = spawnCli(args, env);
  return within(done, ms, () => child.kill('SIGKILL'), `switchboard ${args.join(' ')} did not exit within ${ms} ms`);
}

async function within<T>(promise: Promise<T>, ms: number, onTimeout: () => void, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(message));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Expects exit code 2 and exactly one stderr line `switchboard: …`; returns that line. */
async function usageError(args: string[], env: Record<string, string> = {}): Promise<string> {
  const result = await run(args, env);
  expect(result.code, result.stderr).toBe(2);
  expect(result.stdout).toBe('');
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^switchboard: /);
  expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
  return lines[0] ?? '';
}

/** A port that was free a moment ago, found by listening on port 0. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

async function waitForHealth(port: number, ms: number): Promise<void> {
  // A refused connection means not listening yet.
  const healthy = async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200;
  await vi.waitUntil(healthy, { timeout: ms, interval: 100 }).catch((err: unknown) => {
    throw new Error(`/healthz on port ${port} did not answer 200 within ${ms} ms`, { cause: err });
  });
}

describe('switchboard --version and --help', () => {
  it('--version prints the version of package.json', async () => {
    const result = await run(['--version']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${VERSION}\n`);
    expect(result.stderr).toBe('');
  });

  it('--help and start --help print the flags and exit 0', async () => {
    for (const args of [['--help'], ['start', '--help'], ['start', '--prot', '-h']]) {
      const result = await run(args);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('switchboard start [flags]');
      expect(result.stdout).toContain('--max-connections-per-ip-per-second');
    }
  });

  it('cluster --help prints the cluster command\'s own usage and exits 0', async () => {
    for (const args of [['cluster', '--help'], ['cluster', '--nodes', '3', '-h']]) {
      const result = await run(args);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^Usage: switchboard cluster --nodes N/);
      expect(result.stdout).toContain('start --workers N');
      expect(result.stdout).not.toContain('--max-connections-per-ip-per-second');
    }
  });
});

describe('switchboard outbox-schema', () => {
  it('prints the SQL of the outbox an --ingest URL names, dead-letter table included', async () => {
    const result = await run(['outbox-schema', 'postgres://app:secret@db/shop?table=app.outbox&dead=app.outbox_dead']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^CREATE TABLE IF NOT EXISTS "app"\."outbox" \(/);
    expect(result.stdout).toContain('CREATE TABLE IF NOT EXISTS "app"."outbox_dead" (');
    expect(result.stdout).not.toContain('secret');
  });
});

describe('usage and configuration errors: exit 2, one line on stderr', () => {
  it('no command, or an unknown one', async () => {
    expect(await usageError([])).toBe('switchboard: missing command: run switchboard start [flags] (see switchboard --help)');
    expect(await usageError(['strat'])).toMatch(/^switchboard: unknown command "strat" \(did you mean start\?\)/);
  });

  it('an unknown flag', async () => {
    expect(await usageError(['start', '--prot', '8080'])).toBe('switchboard: unknown flag --prot (did you mean --port?): see switchboard --help');
  });

  it('a bad broker URL', async () => {
    expect(await usageError(['start', '--insecure', '--broker', 'http://localhost'])).toMatch(
      /^switchboard: --broker: "http:\/\/localhost" has an unknown scheme http: use memory, redis:\/\/host:6379/,
    );
  });

  it('a broker and routing that do not go together', async () => {
    expect(await usageError(['start', '--insecure', '--broker', 'nats://localhost:4222', '--routing', 'hashring'])).toMatch(
      /^switchboard: --routing: routing hashring does not work over the NATS broker/,
    );
  });

  it('an unreadable key file', async () => {
    const path = join(TMP, 'missing.pem');
    expect(await usageError(['start', '--public-key', path])).toBe(
      `switchboard: cannot read the public key file ${path} (from --public-key): no such file`,
    );
  });

  it('no authentication', async () => {
    expect(await usageError(['start', '--port', '0'])).toBe(
      'switchboard: no authentication configured, so every connection would be refused: pass --secret, --public-key or --insecure (development only)',
    );
  });

  it('a bad value in the environment', async () => {
    expect(await usageError(['start', '--insecure'], { SWITCHBOARD_PORT: 'eighty' })).toBe(
      'switchboard: SWITCHBOARD_PORT must be a whole number from 0 to 65535, got "eighty"',
    );
  });

  it('a bad --ingest URL, its password hidden', async () => {
    expect(await usageError(['start', '--insecure', '--ingest', 'postgres://app:hunter2@db/shop'])).toBe(
      'switchboard: --ingest: "postgres://app:***@db/shop" needs ?table=<outbox table>: postgres://user:pass@host:5432/db?table=outbox or kafka://host:9092/<topic>?group=<id> (see docs/ingest.md)',
    );
    expect(await usageError(['outbox-schema'])).toMatch(/^switchboard: usage: switchboard outbox-schema </);
    expect(await usageError(['outbox-schema', 'drop table'])).toMatch(/^switchboard: outbox-schema: table "drop table" must be name or schema\.name/);
  });

  it('cluster over the memory broker suggests start --workers N', async () => {
    expect(await usageError(['cluster', '--nodes', '2', '--insecure'])).toBe(
      'switchboard: cluster needs a shared broker: the memory broker lives in one process, so give --broker redis://127.0.0.1:6379 (or another broker URL),' +
        ' or run switchboard start --workers 2 for 2 nodes on one port over the memory broker',
    );
  });

  it('an invalid config file', async () => {
    const path = join(TMP, 'bad.json');
    writeFileSync(path, '{"port": 80,\n "limits": {"maxFrameByte": 1}}');
    expect(await usageError(['start', '--insecure', '--config', path])).toMatch(/^switchboard: unknown key "limits.maxFrameByte" in config file /);
    writeFileSync(path, '{"port": 80,');
    expect(await usageError(['start', '--insecure', '--config', path])).toMatch(/^switchboard: config file .* is not valid JSON/);
  });
});

describe('switchboard start', () => {
  it('serves /healthz and exits 0 on SIGTERM after draining', async () => {
    const port = await freePort();
    const { child, done } = spawnCli(['start', '--insecure', '--host', '127.0.0.1', '--port', String(port), '--log-level', 'silent']);
    const early = done.then((r) => {
      throw new Error(`switchboard exited early with ${String(r.code)}: ${r.stderr}`);
    });
    await Promise.race([waitForHealth(port, 10_000), early]);
    early.catch(() => undefined);
    child.kill('SIGTERM');
    const result = await within(done, 10_000, () => child.kill('SIGKILL'), 'switchboard did not exit within 10 s of SIGTERM');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('WARNING: --insecure is on');
  }, 30_000);

  it('--insecure listens on 127.0.0.1 unless --host is given, and says so', async () => {
    // An address of this machine that is not loopback, if it has one: a loopback-only node must refuse it.
    const outside = Object.values(networkInterfaces())
      .flat()
      .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address;
    const answers = (host: string, port: number) =>
      fetch(`http://${host}:${port}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status === 200, () => false);
    for (const host of [undefined, '0.0.0.0']) {
      const port = await freePort();
      const hostArgs = host === undefined ? [] : ['--host', host];
      const { child, done } = spawnCli(['start', '--insecure', ...hostArgs, '--port', String(port), '--log-level', 'info']);
      const early = done.then((r) => {
        throw new Error(`switchboard exited early with ${String(r.code)}: ${r.stderr}`);
      });
      await Promise.race([waitForHealth(port, 10_000), early]);
      early.catch(() => undefined);
      if (outside !== undefined) expect(await answers(outside, port), `${outside}:${port} with --host ${host ?? '(none)'}`).toBe(host !== undefined);
      child.kill('SIGTERM');
      const result = await within(done, 10_000, () => child.kill('SIGKILL'), 'switchboard did not exit within 10 s of SIGTERM');
      expect(result.code, result.stderr).toBe(0);
      if (host === undefined) {
        expect(result.stderr).toContain('It listens on 127.0.0.1 only, so other machines cannot reach it');
        expect(result.stderr).toContain(`listening: demo page http://127.0.0.1:${port}/`);
      } else {
        expect(result.stderr).toContain('It listens on 0.0.0.0 (from --host): other machines may reach it.');
        expect(result.stderr).toContain(`listening: demo page http://localhost:${port}/`);
      }
    }
  }, 60_000);

  it('a port in use: exit 1 and one line naming host and port', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    const port = address !== null && typeof address !== 'string' ? address.port : 0;
    try {
      const result = await run(['start', '--secret', 'a-secret-that-is-long-enough-for-hs256', '--host', '127.0.0.1', '--port', String(port), '--log-level', 'silent']);
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toBe(
        `switchboard: cannot listen on 127.0.0.1:${port}: address in use (another process holds it: stop that process or pick another --port)\n`,
      );
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  }, 30_000);
});
