/**
 * Node-wide admission over real sockets: handshakes per second and in
 * flight are capped, refusals are HTTP 503 `unavailable` with `Retry-After`
 * and counted by reason, and behind a trusted proxy the per-IP limit counts
 * the address the proxy appended, not one the client wrote.
 */
import { randomBytes } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { Store } from '../../src/brokers/broker.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import type { NodeOptionsInput } from '../../src/server/options.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { metric } from '../helpers/metrics.js';
import { sleep } from '../helpers/wait.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

const nodes: SwitchboardNode[] = [];
const sockets: Socket[] = [];

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
});
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()));
});

async function node(opts: NodeOptionsInput, broker?: MemoryBroker): Promise<SwitchboardNode> {
  const n = await startNode({ ...TEST_NODE, ...opts }, broker ? { broker } : {});
  nodes.push(n);
  return n;
}

/**
 * One WebSocket upgrade request as raw HTTP: 101 (the socket is kept, and
 * closed after the test) or the refusal with its headers and body.
 */
function upgrade(n: SwitchboardNode, user: string, headers: Record<string, string> = {}): Promise<Answer & { socket?: Socket }> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port: n.port,
      path: `/ws?user=${user}`,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        ...headers,
      },
      timeout: 5000,
    });
    req.on('upgrade', (res, socket) => {
      sockets.push(socket);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '', socket });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += String(c)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer to the upgrade within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

/** Resolves with the first WebSocket frame's text on an upgraded socket (unmasked server frame, < 126 bytes not assumed). */
function firstFrame(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error('no frame within 5 s')), 5000);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 2) return;
      let len = buf[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        at = 10;
      }
      if (buf.length < at + len) return;
      clearTimeout(timer);
      resolve(buf.subarray(at, at + len).toString('utf8'));
    });
  });
}

async function rejected(n: SwitchboardNode, reason: string): Promise<number> {
  const text = await (await fetch(n.url('/metrics'))).text();
  const line = text.split('\n').find((l) => l.startsWith('switchboard_connections_rejected_total{') && l.includes(`reason="${reason}"`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** A memory broker whose history reads wait until `open()`: handshakes stay in flight meanwhile. */
class GatedBroker extends MemoryBroker {
  private release: () => void = () => undefined;
  private gate = new Promise<void>((r) => (this.release = r));

  open(): void {
    this.release();
    this.gate = Promise.resolve();
  }

  /** The bus's store, with history reads held until `open()`. */
  override readonly store: Store;

  constructor() {
    const bus = new MemoryBus();
    super(bus);
    this.store = Object.assign(Object.create(bus.store) as Store, {
      history: async (...args: Parameters<Store['history']>) => {
        await this.gate;
        return bus.store.history(...args);
      },
    });
  }
}

describe('admission', () => {
  it('refuses handshakes past the per-second rate with 503 unavailable and Retry-After, then admits again', async () => {
    const n = await node({ limits: { maxHandshakesPerSecond: 5, maxHandshakesInFlight: 0 } });
    // A burst of a second's worth (5), then one more per 200 ms.
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => upgrade(n, `rate${i}`)));
    const elapsed = Date.now() - started;
    const admitted = answers.filter((a) => a.status === 101).length;
    const refused = answers.filter((a) => a.status !== 101);
    expect(admitted).toBeGreaterThanOrEqual(5);
    expect(admitted).toBeLessThanOrEqual(5 + Math.ceil(elapsed / 200));
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) {
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('1');
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'unavailable' } });
    }
    expect(await rejected(n, 'handshake_rate')).toBe(refused.length);
    // Pause, not a wait: the handshake rate window refills.
    await sleep(450);
    expect((await upgrade(n, 'rate-later')).status).toBe(101);
  });

  it('refuses handshakes past the in-flight cap until a welcome frees a slot', async () => {
    const broker = new GatedBroker();
    const n = await node({ limits: { maxHandshakesPerSecond: 0, maxHandshakesInFlight: 2 } }, broker);
    // Upgraded, but held before their welcome (the recovery read waits).
    const held = await Promise.all([upgrade(n, 'held1'), upgrade(n, 'held2')]);
    expect(held.map((h) => h.status)).toEqual([101, 101]);
    const third = await upgrade(n, 'third');
    expect(third.status).toBe(503);
    expect(third.headers['retry-after']).toBe('1');
    expect(await rejected(n, 'handshakes_in_flight')).toBe(1);

    broker.open();
    for (const h of held) expect(JSON.parse(await firstFrame(h.socket!))).toMatchObject({ type: 'welcome' });
    expect((await upgrade(n, 'fourth')).status).toBe(101);
  });

  it('frees the slot of a handshake whose client goes away before its welcome', async () => {
    const broker = new GatedBroker();
    const n = await node({ limits: { maxHandshakesPerSecond: 0, maxHandshakesInFlight: 1 } }, broker);
    const gone = await upgrade(n, 'gone');
    expect(gone.status).toBe(101);
    expect((await upgrade(n, 'blocked')).status).toBe(503);
    gone.socket!.destroy();
    await vi.waitUntil(async () => (await metric(n.url('/metrics'), 'switchboard_handshakes_in_flight')) === 0, { timeout: 5000, interval: 20 });
    const next = upgrade(n, 'next');
    broker.open();
    expect((await next).status).toBe(101);
  });

  it('behind a trusted proxy counts the last X-Forwarded-For address, so a forged first one changes nothing', async () => {
    const n = await node({ trustProxy: true, limits: { maxConnectionsPerIpPerSecond: 2, maxHandshakesPerSecond: 0 } });
    const viaProxy = (forged: string, real: string) => ({ 'x-forwarded-for': `${forged}, ${real}` });
    expect((await upgrade(n, 'p1', viaProxy('1.1.1.1', '203.0.113.7'))).status).toBe(101);
    expect((await upgrade(n, 'p2', viaProxy('2.2.2.2', '203.0.113.7'))).status).toBe(101);
    const third = await upgrade(n, 'p3', viaProxy('3.3.3.3', '203.0.113.7'));
    expect(third.status).toBe(429);
    expect(third.headers['retry-after']).toBe('1');
    expect(await rejected(n, 'ip_rate')).toBe(1);
    // Another client behind the same proxy has a budget of its own.
    expect((await upgrade(n, 'p4', viaProxy('3.3.3.3', '203.0.113.8'))).status).toBe(101);
  });

  it('a draining node refuses with 503 and no Retry-After (go elsewhere)', async () => {
    const n = await node({ drainTimeout: 1 });
    // A raw socket that never answers the close: the drain waits for it, with the listener still up.
    expect((await upgrade(n, 'stays')).status).toBe(101);
    const draining = n.drain();
    const answer = await upgrade(n, 'late');
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toBeUndefined();
    await draining;
  });
});
