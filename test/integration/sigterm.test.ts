/**
 * SIGTERM to a real node process (`bin/switchboard.js start`), as a load
 * balancer or Kubernetes sees it: the node keeps listening while it drains —
 * `/readyz` answers 503 `draining` and new upgrades 503 while a client is
 * still leaving, and for a few seconds even with no client at all — then
 * closes its port and exits 0 within `--drain-timeout`. And, in process,
 * that a drain tells its clients to go a few at a time, not all at once.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { DRAIN_CLOSES_PER_SECOND, READINESS_LINGER_MS } from '../../src/server/drain-pace.js';
import { startNode } from '../../src/server/node.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { RawClient } from '../helpers/raw-client.js';
import { sleep } from '../helpers/wait.js';

const nodes: NodeProcess[] = [];
const sockets: Socket[] = [];

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(nodes.map((n) => n.kill()));
});

async function start(id: string, drainTimeout: number): Promise<NodeProcess> {
  const n = await startNodeProcess(id, ['--insecure', '--drain-timeout', String(drainTimeout)]);
  nodes.push(n);
  return n;
}

/** The exit code of `n`'s process, once it exits. */
function exitCode(n: NodeProcess): Promise<number | null> {
  return new Promise((resolve) => n.proc.once('exit', (code) => resolve(code)));
}

interface Readiness {
  /** Milliseconds since `from`. */
  at: number;
  /** The HTTP status, or `refused` when nothing listens. */
  status: number | 'refused';
  body?: unknown;
}

async function readyz(n: NodeProcess, from: number): Promise<Readiness> {
  try {
    const res = await fetch(n.url('/readyz'), { signal: AbortSignal.timeout(2000) });
    return { at: Date.now() - from, status: res.status, body: await res.json() };
  } catch {
    return { at: Date.now() - from, status: 'refused' };
  }
}

/** The first `/readyz` answer after SIGTERM that is not the 200 of before (the signal takes a moment to arrive). */
async function afterSignal(n: NodeProcess, sent: number): Promise<Readiness> {
  for (;;) {
    const r = await readyz(n, sent);
    if (r.status !== 200 || r.at > 2000) return r;
    await sleep(10);
  }
}

/** A WebSocket upgraded by hand that never answers the server's close: it stays until the drain's deadline cuts it. */
function stubbornSocket(n: NodeProcess): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port: n.port,
      path: '/ws?user=stubborn',
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64') },
      timeout: 5000,
    });
    req.on('upgrade', (res, socket) => {
      sockets.push(socket);
      if (res.statusCode === 101) resolve(socket);
      else reject(new Error(`upgrade answered ${String(res.statusCode)}`));
    });
    req.on('response', (res) => reject(new Error(`upgrade refused with ${String(res.statusCode)}`)));
    req.on('timeout', () => req.destroy(new Error('no answer to the upgrade within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

describe('SIGTERM', () => {
  it('keeps answering /readyz 503 and refusing upgrades while a client is still leaving, then exits 0', async () => {
    const drainTimeout = 6;
    const n = await start('term-busy', drainTimeout);
    expect((await readyz(n, Date.now())).status).toBe(200);
    const polite = await RawClient.connect(n.ws('user=polite'));
    await stubbornSocket(n);
    const exited = exitCode(n);

    const sent = Date.now();
    n.proc.kill('SIGTERM');
    const first = await afterSignal(n, sent);
    expect(first).toMatchObject({ status: 503, body: { status: 'draining' } });
    expect((await polite.closed).code).toBe(4100);
    expect(polite.frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4100, reconnect: true });
    await expect(RawClient.open(n.ws('user=late'))).rejects.toMatchObject({ status: 503 });

    // Past the linger, the stubborn connection is still draining: the node still answers.
    await sleep(READINESS_LINGER_MS + 500 - (Date.now() - sent));
    const later = await readyz(n, sent);
    expect(later.at).toBeLessThan(drainTimeout * 1000);
    expect(later).toMatchObject({ status: 503, body: { status: 'draining' } });

    // Then the deadline cuts the connection, the port closes and the process exits 0.
    expect(await exited).toBe(0);
    expect(Date.now() - sent).toBeGreaterThanOrEqual(drainTimeout * 1000 - 500);
    expect((await readyz(n, sent)).status).toBe('refused');
  }, 30_000);

  it('with no client, keeps answering /readyz 503 for a while (not ECONNREFUSED), then exits 0 well within the drain timeout', async () => {
    const n = await start('term-idle', 30);
    const exited = exitCode(n);
    let done = false;
    void exited.then(() => (done = true));

    const sent = Date.now();
    n.proc.kill('SIGTERM');
    const answers: Readiness[] = [await afterSignal(n, sent)];
    // Every 100 ms until the process is gone (bounded by the drain timeout).
    while (!done && Date.now() - sent < 30_000) {
      answers.push(await readyz(n, sent));
      await sleep(100);
    }
    expect(await exited).toBe(0);
    const answered = answers.filter((a) => a.status !== 'refused');
    // Every answer says draining; the last one came about READINESS_LINGER_MS after SIGTERM.
    expect(answered.length).toBeGreaterThan(0);
    for (const a of answered) expect(a).toMatchObject({ status: 503, body: { status: 'draining' } });
    expect(answered.at(-1)?.at).toBeGreaterThanOrEqual(READINESS_LINGER_MS - 500);
    // Refused only at the very end, once the listener closed.
    const firstRefused = answers.findIndex((a) => a.status === 'refused');
    if (firstRefused >= 0) expect(answers.slice(firstRefused).every((a) => a.status === 'refused')).toBe(true);
    expect(Date.now() - sent).toBeLessThan(15_000);
  }, 30_000);
});

describe('drain pace', () => {
  it('tells its clients to go (4100) spread over a while, not all at once', async () => {
    const n = await startNode({ ...TEST_NODE, drainTimeout: 4, limits: { maxConnectionsPerIpPerSecond: 0, maxHandshakesPerSecond: 0, maxHandshakesInFlight: 0 } });
    const count = 200;
    const clients: RawClient[] = [];
    try {
      for (let i = 0; i < count; i += 50) {
        clients.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => RawClient.connect(`ws://127.0.0.1:${n.port}/ws?user=pace-${i + j}`)))));
      }
      const start = Date.now();
      const at: number[] = [];
      const closes = clients.map((c) => c.closed.then((closed) => (at.push(Date.now() - start), closed.code)));
      await n.drain();
      expect(await Promise.all(closes)).toEqual(Array.from({ length: count }, () => 4100));
      // 200 at DRAIN_CLOSES_PER_SECOND take 200 ms: none is sent before its turn (a loaded machine only delays them),
      // so the last arrives near the end of that, and the second half after the first 50 ms.
      const spread = (count * 1000) / DRAIN_CLOSES_PER_SECOND;
      expect(Math.max(...at)).toBeGreaterThanOrEqual(spread * 0.8);
      expect(at.filter((t) => t < spread / 4).length).toBeLessThanOrEqual(count / 2);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await n.close();
    }
  }, 30_000);
});
