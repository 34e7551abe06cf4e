/**
 * Hash-ring routing with the client SDK and real nodes (in this process, on
 * one memory bus): clients that ask `/api/route` land on their owner with no
 * redirect; clients that knock at the wrong node are redirected (4102) and
 * lose nothing; when a node joins, only the users it now owns move, and
 * when it drains they move back — and the shares moved are measured
 * against the ideal 1/N.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { routeResolver, SwitchboardClient, type DisconnectedEvent, type Publication } from '../../src/client/index.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { api } from '../helpers/api.js';
import { TEST_NODE } from '../helpers/fixture.js';

const USERS = 80;
const bus = new MemoryBus();
const nodes: SwitchboardNode[] = [];
const clients: SwitchboardClient[] = [];

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(nodes.map((n) => n.close()));
});

async function ringNode(id: string): Promise<SwitchboardNode> {
  const n = await startNode(
    { ...TEST_NODE, nodeId: id, routing: 'hashring', hashringRedirect: true, heartbeat: 1, deadAfterBeats: 2, drainTimeout: 5 },
    { broker: new MemoryBroker(bus) },
  );
  nodes.push(n);
  return n;
}

async function clusterSize(n: SwitchboardNode): Promise<number> {
  return ((await api(n.url(), 'GET', '/api/nodes')).body.nodes as unknown[]).length;
}

interface User {
  name: string;
  client: SwitchboardClient;
  node: string;
  drops: DisconnectedEvent[];
  received: Publication[];
}

function user(name: string, url: string, resolve?: () => Promise<string>): User {
  const client = new SwitchboardClient({
    url,
    WebSocket,
    params: { user: name },
    minReconnectDelay: 20,
    maxReconnectDelay: 200,
    ...(resolve ? { resolveUrl: resolve } : {}),
  });
  clients.push(client);
  const u: User = { name, client, node: '', drops: [], received: [] };
  client.on('connected', (e) => (u.node = e.node));
  client.on('disconnected', (e) => u.drops.push(e));
  client.on('message', (m) => u.received.push(m));
  client.connect();
  return u;
}

describe('hash-ring routing with the client SDK', () => {
  it('routes users to their owners, moves only the users a new node owns, and moves them back when it drains', async () => {
    const [a, b, c] = [await ringNode('ring-a'), await ringNode('ring-b'), await ringNode('ring-c')];
    for (const n of [a, b, c]) await vi.waitUntil(async () => (await clusterSize(n)) === 3, { timeout: 10_000, interval: 20 });

    // Half ask /api/route first; half knock at node a whoever owns them.
    const users: User[] = [];
    for (let i = 0; i < USERS; i++) {
      const name = `ring-u${i}`;
      const wsA = `ws://127.0.0.1:${a.port}/ws`;
      users.push(i % 2 === 0 ? user(name, wsA, routeResolver(a.url(), name)) : user(name, wsA));
    }
    // Wait for every user to connect.
    await vi.waitUntil(() => users.every((u) => u.client.state === 'connected'), { timeout: 10_000, interval: 20 });
    for (const u of users) {
      const owner = (await api(b.url(), 'GET', `/api/route?user=${u.name}`)).body as { node: string; url: string };
      expect(u.node, u.name).toBe(owner.node);
    }
    const routed = users.filter((_, i) => i % 2 === 0);
    const knocked = users.filter((_, i) => i % 2 === 1);
    // Asking first costs no redirect; knocking at a non-owner costs exactly one.
    expect(routed.every((u) => u.drops.length === 0)).toBe(true);
    for (const u of knocked) expect(u.drops.length).toBe(u.node === 'ring-a' ? 0 : 1);
    expect(knocked.some((u) => u.drops.length === 1 && u.drops[0]!.code === 4102 && u.drops[0]!.url)).toBe(true);

    // A fourth node joins: exactly the users it now owns are moved (4102), to it, and nobody else is touched.
    const before = new Map(users.map((u) => [u.name, u.drops.length]));
    const d = await ringNode('ring-d');
    for (const n of [a, b, c, d]) await vi.waitUntil(async () => (await clusterSize(n)) === 4, { timeout: 10_000, interval: 20 });
    const ownerNow = async (u: User): Promise<string> =>
      ((await api(a.url(), 'GET', `/api/route?user=${u.name}`)).body as { node: string }).node;
    const toD: User[] = [];
    for (const u of users) if ((await ownerNow(u)) === 'ring-d') toD.push(u);
    // Wait for the users d owns to move to it.
    await vi.waitUntil(() => toD.every((u) => u.node === 'ring-d' && u.client.state === 'connected'), { timeout: 10_000, interval: 20 });
    const movedIn = users.filter((u) => u.drops.length > before.get(u.name)!);
    expect(new Set(movedIn)).toEqual(new Set(toD));
    for (const u of movedIn) expect(u.drops.at(-1)!.code).toBe(4102);
    const shareIn = movedIn.length / USERS;
    // The ideal is 1/4 of the users; a modulo hash would move 3/4.
    expect(shareIn).toBeGreaterThan(0.1);
    expect(shareIn).toBeLessThan(0.4);

    // Messages to a moved user and an unmoved one arrive once each, in order.
    const moved = toD[0]!;
    const stayed = users.find((u) => !toD.includes(u))!;
    for (let i = 0; i < 20; i++) {
      for (const u of [moved, stayed]) {
        const via = nodes[i % 4]!;
        expect((await api(via.url(), 'POST', '/api/send', { user: u.name, data: { i } })).status).toBe(200);
      }
    }
    for (const u of [moved, stayed]) {
      await vi.waitUntil(() => u.received.filter((m) => m.channel === `user:${u.name}`).length >= 20, { timeout: 10_000, interval: 20 });
      expect(u.received.filter((m) => m.channel === `user:${u.name}`).map((m) => (m.data as { i: number }).i)).toEqual(
        Array.from({ length: 20 }, (_, i) => i),
      );
    }

    // d drains: its users, and only they, go back (4100, then to their owners on the smaller ring).
    const beforeDrain = new Map(users.map((u) => [u.name, u.drops.length]));
    await d.drain();
    for (const n of [a, b, c]) await vi.waitUntil(async () => (await clusterSize(n)) === 3, { timeout: 10_000, interval: 20 });
    // Wait for d's users to be back on the other nodes.
    await vi.waitUntil(() => toD.every((u) => u.client.state === 'connected' && u.node !== 'ring-d'), { timeout: 10_000, interval: 20 });
    const movedBack = users.filter((u) => u.drops.length > beforeDrain.get(u.name)!);
    expect(new Set(movedBack)).toEqual(new Set(toD));
    for (const u of users) {
      const owner = (await api(b.url(), 'GET', `/api/route?user=${u.name}`)).body as { node: string };
      expect(u.node).toBe(owner.node);
    }
    console.log(`hashring 3→4 nodes: ${movedIn.length}/${USERS} users moved (${(shareIn * 100).toFixed(1)}%, ideal 25%); 4→3: ${movedBack.length}/${USERS}`);
  }, 60_000);
});
