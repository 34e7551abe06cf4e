/**
 * Join and leave with the client SDK, on two embedded nodes sharing one
 * in-process broker: a subscription's `join` and `leave` events on JSON
 * and MessagePack connections, across the nodes; the webhook's events from
 * the memory store's log; and the leaves of a node that drains.
 */
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { SwitchboardClient, type MemberEvent, type Subscription } from '../../src/client/index.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import type { NodeOptionsInput } from '../../src/server/options.js';
import { api } from '../helpers/api.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'memory-join-leave-secret';
const ROOM = { historySize: 0, historyTtl: 1, presence: false, publish: true, private: false, joinLeave: true };
const nodes: SwitchboardNode[] = [];
const clients: SwitchboardClient[] = [];
let receiver: WebhookReceiver;

afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()));
  await receiver?.close();
});

async function node(bus: MemoryBus, id: string, opts: NodeOptionsInput = {}): Promise<SwitchboardNode> {
  const n = await startNode({ ...TEST_NODE, nodeId: id, msgpack: true, heartbeat: 1, deadAfterBeats: 2, namespaces: { room: ROOM }, ...opts }, { broker: new MemoryBroker(bus) });
  nodes.push(n);
  return n;
}

/** Wait until `n` sees both nodes. */
async function bothSeen(n: SwitchboardNode): Promise<void> {
  await vi.waitFor(async () => expect((await api(n.url(), 'GET', '/api/nodes')).body.nodes).toHaveLength(2), { timeout: 5000, interval: 20 });
}

/** A connected client of `user` and its subscription to `channel`, recording its join and leave events. */
async function member(n: SwitchboardNode, user: string, channel: string, codec: 'json' | 'msgpack' = 'json') {
  const c = new SwitchboardClient({ url: `ws://127.0.0.1:${n.port}/ws`, WebSocket, params: { user }, codec });
  clients.push(c);
  c.connect();
  const sub: Subscription = c.subscribe(channel);
  const seen: string[] = [];
  const note = (e: MemberEvent, type: string): number => seen.push(`${type} ${e.channel} ${e.user}`);
  sub.on('join', (e) => note(e, 'join'));
  sub.on('leave', (e) => note(e, 'leave'));
  await sub.ready(5000);
  return { c, sub, seen, session: () => c.connection?.session };
}

describe('join and leave with the client SDK on the memory broker', () => {
  it('emits join and leave on the subscriptions of both nodes, in JSON and MessagePack, and logs them for the webhook', async () => {
    receiver = await WebhookReceiver.start(SECRET);
    const bus = new MemoryBus();
    const webhook = { webhook: receiver.url, webhookSecret: SECRET };
    const a = await node(bus, 'ma', webhook);
    const b = await node(bus, 'mb', webhook);
    await bothSeen(a);
    const json = await member(b, 'watcher', 'room:1');
    const binary = await member(a, 'binary', 'room:1', 'msgpack');
    expect(binary.c.connection?.codec).toBe('msgpack');
    await vi.waitFor(() => expect(json.seen).toEqual(['join room:1 binary']), { timeout: 5000, interval: 20 });
    const ann = await member(a, 'ann', 'room:1');
    const annSession = ann.session();
    ann.sub.unsubscribe();
    for (const w of [json, binary]) {
      await vi.waitFor(() => expect(w.seen.slice(-2)).toEqual(['join room:1 ann', 'leave room:1 ann']), { timeout: 5000, interval: 20 });
    }
    expect(ann.seen).toEqual([]);
    await vi.waitFor(() => expect(receiver.typesOf('ann')).toEqual(['online', 'join', 'leave']), { timeout: 5000, interval: 20 });
    expect(receiver.accepted().filter((e) => e.user === 'ann' && e.type !== 'online').map((e) => [e.channel, e.session, e.node])).toEqual([
      ['room:1', annSession, 'ma'],
      ['room:1', annSession, 'ma'],
    ]);
  });

  it("tells a node's subscribers of the leaves of a node that drains", async () => {
    const bus = new MemoryBus();
    const a = await node(bus, 'da');
    const b = await node(bus, 'db');
    await bothSeen(a);
    const watcher = await member(a, 'watcher', 'room:2');
    await member(b, 'leaver', 'room:2');
    await vi.waitFor(() => expect(watcher.seen).toEqual(['join room:2 leaver']), { timeout: 5000, interval: 20 });
    await b.close();
    await vi.waitFor(() => expect(watcher.seen).toEqual(['join room:2 leaver', 'leave room:2 leaver']), { timeout: 5000, interval: 20 });
  });
});
