/**
 * Several nodes in this process over one broker — the in-process bus, a real
 * redis-server, and a real 3-master Redis Cluster: a message produced on one
 * node reaches sockets held by the others, and every node answers the server
 * API for the whole cluster.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Broker } from '../../src/brokers/broker.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import type { NodeOptionsInput } from '../../src/server/options.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { api } from '../helpers/api.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, startRedisCluster } from '../helpers/redis-server.js';

interface Backend {
  /** Options and deps for one node on this backend. */
  node(): { options: NodeOptionsInput; broker?: Broker };
  stop(): Promise<void>;
}

const backends: Record<string, () => Promise<Backend>> = {
  memory: async () => {
    const bus = new MemoryBus();
    return { node: () => ({ options: {}, broker: new MemoryBroker(bus) }), stop: async () => undefined };
  },
  redis: async () => {
    const redis = await startRedis();
    return { node: () => ({ options: { broker: redis.url } }), stop: () => redis.stop() };
  },
  'redis-cluster': async () => {
    const cluster = await startRedisCluster(3);
    return { node: () => ({ options: { broker: cluster.url } }), stop: () => cluster.stop() };
  },
};

describe.each(Object.keys(backends))('a cluster over the %s broker', (backendName) => {
  let backend: Backend;
  const nodes: SwitchboardNode[] = [];
  const clients: RawClient[] = [];
  let a: SwitchboardNode;
  let b: SwitchboardNode;
  let c: SwitchboardNode;

  async function connect(n: SwitchboardNode, query: string): Promise<RawClient> {
    const client = await RawClient.connect(`ws://127.0.0.1:${n.port}/ws?${query}`);
    clients.push(client);
    return client;
  }

  async function startOne(id: string, extra: NodeOptionsInput = {}): Promise<SwitchboardNode> {
    const { options, broker } = backend.node();
    return startNode({ ...TEST_NODE, nodeId: id, heartbeat: 1, ...options, ...extra }, broker ? { broker } : {});
  }

  beforeAll(async () => {
    backend = await backends[backendName]!();
    for (const id of ['node-a', 'node-b', 'node-c']) nodes.push(await startOne(id));
    [a, b, c] = nodes as [SwitchboardNode, SwitchboardNode, SwitchboardNode];
    // Every node has heard the others (the last one started learns of them from their answers to its first beat).
    await vi.waitUntil(
      async () => (await Promise.all(nodes.map(async (n) => ((await api(n.url(), 'GET', '/api/nodes')).body.nodes as unknown[]).length))).every((count) => count === 3),
      { timeout: 5_000, interval: 25 },
    );
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((x) => x.close()));
    await Promise.all(nodes.map((n) => n.close()));
    await backend?.stop();
  }, 30_000);

  it('every node lists every node', async () => {
    for (const n of nodes) {
      const listed = (await api(n.url(), 'GET', '/api/nodes')).body.nodes as Array<{ id: string }>;
      expect(listed.map((x) => x.id).sort()).toEqual(['node-a', 'node-b', 'node-c']);
      expect(listed[0]?.id).toBe(n.id);
    }
  });

  it('publications through any node reach subscribers on the others, once each, in order', async () => {
    const onA = await connect(a, 'user=ann');
    const onC = await connect(c, 'user=cid');
    await onA.request({ type: 'subscribe', channel: 'ops' });
    await onC.request({ type: 'subscribe', channel: 'ops' });
    for (let i = 1; i <= 30; i++) await api(nodes[i % 3]!.url(), 'POST', '/api/publish', { channel: 'ops', data: i });
    for (const client of [onA, onC]) {
      await client.waitFor((f) => f.type === 'message', 30);
      expect(client.messages('ops').map((m) => m.data)).toEqual([...Array(30).keys()].map((i) => i + 1));
      expect(client.messages('ops').map((m) => m.offset)).toEqual([...Array(30).keys()].map((i) => i + 1));
    }
  });

  it('a user with devices on two nodes gets a send through a third on both; users and disconnect answer cluster-wide', async () => {
    const phone = await connect(a, 'user=dee');
    const laptop = await connect(c, 'user=dee');
    await api(b.url(), 'POST', '/api/send', { user: 'dee', data: 'both' });
    for (const d of [phone, laptop]) expect(await d.next((f) => f.type === 'message')).toMatchObject({ data: 'both' });
    const user = (await api(b.url(), 'GET', '/api/users/dee')).body as { online: boolean; sessions: Array<{ node: string }> };
    expect(user.online).toBe(true);
    expect(user.sessions.map((s) => s.node).sort()).toEqual(['node-a', 'node-c']);
    const kicked = await api(b.url(), 'POST', '/api/disconnect', { user: 'dee', code: 4000, reason: 'bye' });
    expect(kicked.body).toEqual({ sessions: 2 });
    for (const d of [phone, laptop]) expect((await d.closed).code).toBe(4000);
  });

  it('a client that reconnects to a different node recovers what it missed', async () => {
    const first = await connect(a, 'user=eli');
    const sub = (await first.request({ type: 'subscribe', channel: 'journal' })) as { result: { epoch: string; offset: number } };
    await api(b.url(), 'POST', '/api/publish', { channel: 'journal', data: 'seen' });
    // The channel's epoch comes with its first message (the subscribe, before it, had none to give).
    const seen = (await first.next((f) => f.type === 'message')) as { epoch: string };
    await api(b.url(), 'POST', '/api/send', { user: 'eli', data: 'p-seen' });
    await first.next((f) => f.type === 'message' && f.channel === 'user:eli');
    await first.close();
    await api(b.url(), 'POST', '/api/publish', { channel: 'journal', data: 'missed' });
    await api(b.url(), 'POST', '/api/send', { user: 'eli', data: 'p-missed' });
    const personal = first.messages('user:eli').at(-1)!;
    const second = await connect(c, `user=eli&since=${personal.offset}&epoch=${personal.epoch}`);
    expect(second.welcome).toMatchObject({ recovered: true, messages: [{ data: 'p-missed' }] });
    const reply = await second.request({
      type: 'subscribe',
      channel: 'journal',
      since: { offset: sub.result.offset + 1, epoch: seen.epoch },
    });
    expect(reply).toMatchObject({ result: { recovered: true, messages: [{ data: 'missed' }] } });
  });

  it('a drained node leaves /api/nodes at once', async () => {
    const extra = await startOne('node-x', { drainTimeout: 1 });
    await vi.waitUntil(async () => ((await api(a.url(), 'GET', '/api/nodes')).body.nodes as unknown[]).length === 4, { timeout: 5_000, interval: 25 });
    await extra.drain();
    const listed = (await api(a.url(), 'GET', '/api/nodes')).body.nodes as Array<{ id: string }>;
    expect(listed.map((x) => x.id).sort()).toEqual(['node-a', 'node-b', 'node-c']);
  });
});
