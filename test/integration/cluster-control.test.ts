/**
 * Control messages published by hand on the Redis control channel (as
 * anyone with access to Redis could): forged and malformed heartbeats stay
 * out of `/api/nodes`, the admin view and the hash ring, and are counted;
 * with a cluster secret, nodes sharing it work together (cross-node
 * delivery, cluster requests), while a node with another secret, a
 * well-formed heartbeat without a signature and a replayed one are ignored.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { NodeOptionsInput } from '../../src/server/options.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { api } from '../helpers/api.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { metric } from '../helpers/metrics.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { sleep } from '../helpers/wait.js';

/** The Redis broker's channel for control messages to every node (keys.ts, default prefix). */
const CONTROL_ALL = 'sb:ctl';

let redis: RedisProcess;
let publisher: Redis;
const nodes: SwitchboardNode[] = [];
const clients: RawClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  publisher = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await publisher.connect();
}, 30_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.close()));
  publisher?.disconnect();
  await redis?.stop();
}, 30_000);

async function start(id: string, extra: NodeOptionsInput = {}): Promise<SwitchboardNode> {
  const n = await startNode({ ...TEST_NODE, nodeId: id, broker: redis.url, routing: 'hashring', heartbeat: 1, deadAfterBeats: 3, ...extra });
  nodes.push(n);
  return n;
}

const listed = async (n: SwitchboardNode): Promise<string[]> =>
  ((await api(n.url(), 'GET', '/api/nodes')).body.nodes as Array<{ id: string }>).map((x) => x.id).sort();
const adminListed = async (n: SwitchboardNode): Promise<string[]> =>
  ((await api(n.url(), 'GET', '/api/admin/cluster')).body.nodes as Array<{ id: string }>).map((x) => x.id).sort();
/** The owners `/api/route` names for many users: the hash ring's members as the node sees them. */
async function ringOwners(n: SwitchboardNode): Promise<string[]> {
  const owners = new Set<string>();
  for (let i = 0; i < 200; i++) owners.add((await api(n.url(), 'GET', `/api/route?user=u${i}`)).body.node as string);
  return [...owners].sort();
}
const rejected = (n: SwitchboardNode, reason: string) => metric(n.url('/metrics'), 'switchboard_control_rejected_total', { reason });

function heartbeat(id: string, over: Record<string, unknown> = {}): string {
  const info = { id, address: 'http://127.0.0.1:1', url: 'ws://127.0.0.1:1/ws', routing: 'hashring', connections: 0, subscriptions: 0, uptime: 1, ready: true, draining: false, ...over };
  return JSON.stringify({ type: 'heartbeat', from: id, info });
}

/** Publish `payloads` a few times over a few seconds, as a node's beats would come. */
async function forge(payloads: string[], rounds = 3): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    for (const p of payloads) await publisher.publish(CONTROL_ALL, p);
    await sleep(300);
  }
}

describe('forged heartbeats on the Redis control channel', () => {
  let a: SwitchboardNode;
  let b: SwitchboardNode;

  beforeAll(async () => {
    a = await start('plain-a');
    b = await start('plain-b');
    await vi.waitUntil(async () => (await listed(a)).length === 2 && (await listed(b)).length === 2, { timeout: 10_000, interval: 50 });
  }, 30_000);

  it('stay out of /api/nodes, the admin view and the hash ring, and are counted', async () => {
    const html = '<img src=x onerror=alert(1)>';
    await forge([
      heartbeat(html),
      heartbeat('fake-1', { id: html }),
      heartbeat('fake-2', { url: 'javascript:alert(1)' }),
      heartbeat('fake-3', { url: 'ws://evil.example/ws', connections: -5 }),
      heartbeat('fake-4').replace('"uptime":1', '"uptime":1e999'),
      JSON.stringify({ type: 'heartbeat', from: 'fake-5' }),
      '{"type":"heartbeat","from":',
    ]);
    for (const n of [a, b]) {
      expect(await listed(n)).toEqual(['plain-a', 'plain-b']);
      expect(await adminListed(n)).toEqual(['plain-a', 'plain-b']);
      expect(await ringOwners(n)).toEqual(['plain-a', 'plain-b']);
      expect(await rejected(n, 'invalid')).toBeGreaterThanOrEqual(18);
      expect(await rejected(n, 'malformed')).toBeGreaterThanOrEqual(3);
    }
  }, 30_000);
});

describe('with a cluster secret', () => {
  const SECRET = 'cluster-secret-for-tests-0123456789';
  let a: SwitchboardNode;
  let b: SwitchboardNode;
  let wrong: SwitchboardNode;
  let none: SwitchboardNode;

  beforeAll(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.close()));
    const interest = { routing: 'interest' as const };
    a = await start('sealed-a', { ...interest, clusterSecrets: [SECRET] });
    // Halfway through rolling to a new key: accepted already, not yet signing.
    b = await start('sealed-b', { ...interest, clusterSecrets: [SECRET, 'the-next-key-being-rolled-out'] });
    wrong = await start('wrong-key', { ...interest, clusterSecrets: ['not-the-cluster-secret'] });
    none = await start('no-key', interest);
    await vi.waitUntil(async () => (await listed(a)).length === 2 && (await listed(b)).length === 2, { timeout: 10_000, interval: 50 });
  }, 30_000);

  it('nodes with the secret form the cluster; a node with another secret or none is kept out, both ways', async () => {
    // Pause, not a wait: several beats (1 s) of the outsiders must go by unheeded.
    await sleep(2_500);
    expect(await listed(a)).toEqual(['sealed-a', 'sealed-b']);
    expect(await listed(b)).toEqual(['sealed-a', 'sealed-b']);
    expect(await adminListed(a)).toEqual(['sealed-a', 'sealed-b']);
    expect(await listed(wrong)).toEqual(['wrong-key']);
    expect(await listed(none)).toEqual(['no-key']);
    expect(await rejected(a, 'bad_signature')).toBeGreaterThan(0);
    expect(await rejected(a, 'unsigned')).toBeGreaterThan(0);
  }, 30_000);

  it('deliver across nodes, and answer cluster requests', async () => {
    const onB = await RawClient.connect(`ws://127.0.0.1:${b.port}/ws?user=carol`);
    clients.push(onB);
    await onB.request({ type: 'subscribe', channel: 'news' });
    expect((await api(a.url(), 'POST', '/api/publish', { channel: 'news', data: 'sealed hello' })).status).toBe(200);
    expect(await onB.next((f) => f.type === 'message')).toMatchObject({ channel: 'news', data: 'sealed hello' });
    expect((await api(a.url(), 'POST', '/api/disconnect', { user: 'carol', code: 4000, reason: 'bye' })).body).toEqual({ sessions: 1 });
    expect((await onB.closed).code).toBe(4000);
  }, 30_000);

  it('ignore a well-formed heartbeat without a signature, and a replayed genuine one', async () => {
    const unsignedBefore = await rejected(a, 'unsigned');
    await forge([heartbeat('forged-node')]);
    expect(await listed(a)).toEqual(['sealed-a', 'sealed-b']);
    expect(await ringOwnersOrSelf(a)).toBe(true);
    expect(await rejected(a, 'unsigned')).toBeGreaterThanOrEqual(unsignedBefore + 3);

    // Capture one of sealed-a's genuine messages off the channel, and publish it again.
    const listener = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 2 });
    await listener.connect();
    const captured = new Promise<string>((resolve) => {
      listener.on('message', (_channel: string, message: string) => {
        if (message.startsWith('sb1 ') && message.includes('"from":"sealed-a"')) resolve(message);
      });
    });
    await listener.subscribe(CONTROL_ALL);
    const genuine = await captured;
    listener.disconnect();
    const replayedBefore = await rejected(b, 'replayed');
    await publisher.publish(CONTROL_ALL, genuine);
    await vi.waitUntil(async () => (await rejected(b, 'replayed')) > replayedBefore, { timeout: 5_000, interval: 50 });
  }, 30_000);
});

/** Under interest routing `/api/route` names the answering node itself: never the forged one. */
async function ringOwnersOrSelf(n: SwitchboardNode): Promise<boolean> {
  return (await ringOwners(n)).every((owner) => owner === n.id);
}
