/**
 * NATS and RabbitMQ outages under a running two-node cluster, as
 * `redis-outage.test.ts` does for Redis: a real nats-server is killed
 * (SIGKILL) and restarted on the same port and JetStream store; RabbitMQ,
 * which other tests share, is cut off behind a TCP proxy and let through
 * again. While the broker is gone readiness says 503 and the API refuses
 * publications (503) instead of accepting what it cannot deliver; clients
 * stay connected; when it is back, subscriptions and consumers come back
 * without a restart, and every publish answered 200 is delivered exactly
 * once, in order.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import type { RoutingName } from '../../src/server/options.js';
import { api } from '../helpers/api.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { startNats } from '../helpers/nats-server.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis } from '../helpers/redis-server.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { sleep } from '../helpers/wait.js';

interface Outage {
  url: string;
  /** Make the broker unreachable. */
  down(): Promise<void>;
  /** Bring it back. */
  up(): Promise<void>;
  stop(): Promise<void>;
}

const BACKENDS: Array<{ name: string; routings: RoutingName[]; start(): Promise<Outage> }> = [
  {
    name: 'NATS (nats-server killed and restarted)',
    routings: ['interest', 'broadcast'],
    start: async () => {
      const nats = await startNats();
      return { url: nats.url, down: () => nats.kill(), up: () => nats.restart(), stop: () => nats.stop() };
    },
  },
  {
    name: 'RabbitMQ (cut off behind a proxy)',
    routings: ['interest', 'registry'],
    start: async () => {
      const redis = await startRedis();
      const proxy = await startTcpProxy(5672);
      const prefix = `out${randomBytes(4).toString('hex')}`;
      return {
        url: `amqp://guest:guest@127.0.0.1:${proxy.port}/?store=${redis.url}&prefix=${prefix}`,
        down: async () => proxy.cut(),
        up: async () => proxy.restore(),
        stop: async () => {
          await proxy.close();
          await redis.stop();
        },
      };
    },
  },
];

const CASES = BACKENDS.flatMap((b) => b.routings.map((routing) => ({ backend: b, routing, title: `${b.name}, ${routing} routing` })));

let outage: Outage | undefined;
const nodes: SwitchboardNode[] = [];
const clients: RawClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(nodes.splice(0).map((n) => n.close()));
  await outage?.stop();
  outage = undefined;
});

const readyz = async (n: SwitchboardNode) => (await fetch(n.url('/readyz'))).status;

describe.each(CASES)('broker outage: $title', ({ backend, routing }) => {
  it('readiness and the API say 503 while the broker is gone; afterwards every publish answered 200 arrives once, in order', async () => {
    outage = await backend.start();
    for (const id of ['bo-a', 'bo-b']) {
      // A short publish deadline: publishes wait 200 ms for the broker, then answer 503 (the outage lasts longer).
      nodes.push(await startNode({ ...TEST_NODE, nodeId: id, broker: outage.url, heartbeat: 1, routing, publishDeadline: 200 }));
    }
    const [a, b] = nodes as [SwitchboardNode, SwitchboardNode];
    const x = await RawClient.connect(`ws://127.0.0.1:${a.port}/ws?user=x`);
    const y = await RawClient.connect(`ws://127.0.0.1:${b.port}/ws?user=y`);
    clients.push(x, y);
    for (const c of [x, y]) expect(await c.request({ type: 'subscribe', channel: 'feed' })).toHaveProperty('result');

    const acked: number[] = [];
    let refused = 0;
    for (let i = 0; i < 150; i++) {
      if (i === 50) {
        await outage.down();
        // Wait for readiness to flip to 503.
        await vi.waitUntil(async () => (await readyz(a)) === 503 && (await readyz(b)) === 503, { timeout: 15_000, interval: 25 });
      }
      if (i === 80) {
        await outage.up();
        // Wait for readiness to come back.
        await vi.waitUntil(async () => (await readyz(a)) === 200 && (await readyz(b)) === 200, { timeout: 20_000, interval: 25 });
      }
      const r = await api((i % 2 ? a : b).url(), 'POST', '/api/publish', { channel: 'feed', data: i });
      if (r.status === 200) acked.push(r.body.offset as number);
      else {
        expect(r).toMatchObject({ status: 503, body: { error: { code: 'unavailable' } } });
        refused++;
      }
      // The publishers' pace.
      await sleep(10);
    }
    expect(refused).toBeGreaterThan(0);
    expect(acked.length).toBeGreaterThan(100);
    for (const c of [x, y]) {
      await c.waitFor((f) => f.type === 'message', acked.length, 15_000);
      // Every acknowledged message, once each, in order — and nothing else.
      expect(c.messages('feed').map((m) => m.offset)).toEqual([...acked].sort((p, q) => p - q));
      expect(c.ws.readyState).toBe(c.ws.OPEN);
    }
    // Personal channels work again across the nodes too.
    expect((await api(b.url(), 'POST', '/api/send', { user: 'x', data: 'after' })).status).toBe(200);
    await x.next((f) => f.type === 'message' && f.channel === 'user:x' && f.data === 'after');
  }, 90_000);
});
