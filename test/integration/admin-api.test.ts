/**
 * `GET /api/admin/cluster`, the data behind the dashboard at `/admin`: it
 * needs the API key like the rest of the API, lists every live node with
 * the load figures its heartbeat carries (so node B reports node A's
 * connections and delivery rate), and under hash-ring routing the share of
 * users each node owns. A node in `--insecure` mode with no key leaves it
 * open like the rest of the API.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import type { ClusterView } from '../../src/server/admin/cluster-view.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { api } from '../helpers/api.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { RawClient } from '../helpers/raw-client.js';
import { sleep } from '../helpers/wait.js';

const bus = new MemoryBus();
const nodes: SwitchboardNode[] = [];
const clients: RawClient[] = [];

async function ringNode(id: string, extra: Record<string, unknown> = {}): Promise<SwitchboardNode> {
  const n = await startNode(
    { ...TEST_NODE, nodeId: id, routing: 'hashring', heartbeat: 1, deadAfterBeats: 2, ...extra },
    { broker: new MemoryBroker(bus) },
  );
  nodes.push(n);
  return n;
}

async function view(n: SwitchboardNode): Promise<ClusterView> {
  const res = await api(n.url(), 'GET', '/api/admin/cluster');
  expect(res.status).toBe(200);
  return res.body as unknown as ClusterView;
}

let a: SwitchboardNode;
let b: SwitchboardNode;

beforeAll(async () => {
  a = await ringNode('adm-a');
  b = await ringNode('adm-b');
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.close()));
});

describe('GET /api/admin/cluster', () => {
  it('needs the API key', async () => {
    expect((await api(a.url(), 'GET', '/api/admin/cluster', undefined, null)).status).toBe(401);
    expect((await api(a.url(), 'GET', '/api/admin/cluster', undefined, 'wrong-key')).status).toBe(401);
    expect((await api(a.url(), 'GET', '/api/admin/cluster')).status).toBe(200);
  });

  it('lists both nodes with their fields, and ring shares that add up to the whole ring', async () => {
    const v = await vi.waitUntil(
      async () => {
        const x = await view(b);
        if (x.nodes.length === 2) return x;
      },
      { timeout: 10_000, interval: 100 },
    );
    expect(v.node).toBe('adm-b');
    expect(v.routing).toBe('hashring');
    expect(v.nodes.map((n) => n.id).sort()).toEqual(['adm-a', 'adm-b']);
    for (const n of v.nodes) {
      expect(n.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/ws$/);
      expect(n.routing).toBe('hashring');
      expect(n.broker).toBe('memory');
      expect(n.ready).toBe(true);
      expect(n.draining).toBe(false);
      expect(typeof n.uptime).toBe('number');
      expect(typeof n.connections).toBe('number');
      expect(typeof n.subscriptions).toBe('number');
      expect(typeof n.messagesInPerSec).toBe('number');
      expect(typeof n.messagesOutPerSec).toBe('number');
      // Two nodes of 160 virtual points each: each owns roughly half the users.
      expect(n.ringShare).toBeGreaterThan(0.3);
      expect(n.ringShare).toBeLessThan(0.7);
    }
    const total = v.nodes.reduce((s, n) => s + (n.ringShare ?? 0), 0);
    expect(total).toBeCloseTo(1, 2);
    expect(v.totals.nodes).toBe(2);
    expect(v.totals.ready).toBe(2);
  });

  it('carries a node’s connections, delivery rate and latency to the other node in its heartbeat', async () => {
    const c = await RawClient.connect(`ws://127.0.0.1:${a.port}/ws?user=watcher`);
    clients.push(c);
    expect(await c.request({ type: 'subscribe', channel: 'adm.room' })).toHaveProperty('result');
    // Publish for a few seconds (bounded: 40 messages, 10 per second) so a sample window holds deliveries.
    const publishing = (async () => {
      for (let i = 0; i < 40; i++) {
        expect((await api(b.url(), 'POST', '/api/publish', { channel: 'adm.room', data: i })).status).toBe(200);
        await sleep(100);
      }
    })();
    // Wait for node A’s load seen from node B.
    const seen = await vi.waitUntil(
      async () => {
        const x = await view(b);
        const n = x.nodes.find((m) => m.id === 'adm-a');
        if (n !== undefined && n.connections === 1 && (n.messagesOutPerSec ?? 0) > 0 && n.latencyP99Ms !== undefined) return x;
      },
      { timeout: 10_000, interval: 100 },
    );
    await publishing;
    const fromB = seen.nodes.find((m) => m.id === 'adm-a');
    expect(fromB?.subscriptions).toBeGreaterThanOrEqual(1);
    expect(fromB?.latencyP50Ms).toBeGreaterThan(0);
    expect(fromB?.latencyP99Ms).toBeGreaterThanOrEqual(fromB?.latencyP50Ms ?? Infinity);
    expect(seen.totals.connections).toBe(1);
  });

  it('counts publications through the server API as messages in, on a node no client talks to', async () => {
    const fed = await ringNode('adm-fed');
    // Publish for a few seconds (bounded: 40 messages, 10 per second) so a one-second sample holds some.
    let publishing = true;
    const publisher = (async () => {
      for (let i = 0; i < 40 && publishing; i++) {
        expect((await api(fed.url(), 'POST', '/api/publish', { channel: 'adm.fed', data: i })).status).toBe(200);
        await sleep(100);
      }
    })();
    try {
      const seen = await vi.waitUntil(
        async () => {
          const n = (await view(fed)).nodes.find((m) => m.id === 'adm-fed');
          if (n !== undefined && (n.messagesInPerSec ?? 0) > 0) return n;
        },
        { timeout: 10_000, interval: 100 },
      );
      expect(seen.connections).toBe(0);
      // About 10 per second; a loaded machine publishes fewer, never more than one sample can hold.
      expect(seen.messagesInPerSec).toBeLessThanOrEqual(40);
    } finally {
      publishing = false;
      await publisher;
    }
  });

  it('is open on an --insecure node without an API key, like the rest of the API', async () => {
    const open = await startNode({ ...TEST_NODE, nodeId: 'adm-open', apiKeys: [], insecure: true });
    nodes.push(open);
    const res = await api(open.url(), 'GET', '/api/admin/cluster', undefined, null);
    expect(res.status).toBe(200);
    const v = res.body as unknown as ClusterView;
    expect(v.nodes.map((n) => n.id)).toEqual(['adm-open']);
    expect(v.nodes[0]?.ringShare).toBeUndefined();
  });
});
