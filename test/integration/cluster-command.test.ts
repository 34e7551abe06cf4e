/**
 * `switchboard cluster --nodes 3` over a real redis-server: three node
 * processes on consecutive ports form one cluster, and SIGTERM drains them all.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';

const BIN = fileURLToPath(new URL('../../bin/switchboard.js', import.meta.url));
let redis: RedisProcess | undefined;

afterAll(async () => {
  await redis?.stop();
});

/** A base port whose next two ports are free too. */
async function basePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const p = await freePort();
    if (p > 65000) continue;
    const { createServer } = await import('node:net');
    const ok = await Promise.all(
      [1, 2].map(
        (d) =>
          new Promise<boolean>((resolve) => {
            const s = createServer();
            s.once('error', () => resolve(false));
            s.listen(p + d, '127.0.0.1', () => s.close(() => resolve(true)));
          }),
      ),
    );
    if (ok.every(Boolean)) return p;
  }
  throw new Error('no three consecutive free ports');
}

describe('switchboard cluster', () => {
  it('starts N nodes on consecutive ports that see each other, prints the nginx upstream, and drains on SIGTERM', async () => {
    redis = await startRedis();
    const port = await basePort();
    const child = spawn(
      process.execPath,
      [BIN, 'cluster', '--nodes', '3', '--broker', redis.url, '--insecure', '--port', String(port), '--host', '127.0.0.1', '--heartbeat', '1', '--log-level', 'warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      let ids: string[] = [];
      await vi
        .waitUntil(
          async () => {
            try {
              const res = await fetch(`http://127.0.0.1:${port + 2}/api/nodes`);
              ids = ((await res.json()) as { nodes: Array<{ id: string }> }).nodes.map((n) => n.id).sort();
            } catch {
              // not up yet
            }
            return ids.length === 3;
          },
          { timeout: 20_000, interval: 200 },
        )
        .catch(() => undefined); // the assertion below says which nodes are missing
      expect(ids).toEqual(['node-1', 'node-2', 'node-3']);
      for (const d of [0, 1, 2]) expect((await fetch(`http://127.0.0.1:${port + d}/readyz`)).status).toBe(200);
      expect(stderr).toContain(`server 127.0.0.1:${port};`);
      expect(stderr).toContain(`server 127.0.0.1:${port + 2};`);
      child.kill('SIGTERM');
      expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000))])).toBe(0);
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toBeDefined();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);
});
