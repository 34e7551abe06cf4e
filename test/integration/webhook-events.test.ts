/**
 * `online`/`offline` events to `--webhook`, end to end: two node processes
 * over a real redis-server and a backend started here, which checks every
 * request's signature with the server SDK. Exactly once per transition
 * across the nodes, order per user, retries with the same ids while the
 * backend is down, the pending bound, and a node killed with SIGKILL.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { api } from '../helpers/api.js';
import { metric } from '../helpers/metrics.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { sleep } from '../helpers/wait.js';
import { DELIVERY_MARGIN_MS, FAST_DETECTION, WebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'webhook-test-secret-0123456789abcdef';
const DETECTION_MS = FAST_DETECTION.ms;

let redis: RedisProcess;
let receiver: WebhookReceiver;
let a: NodeProcess;
let b: NodeProcess;
const nodes: NodeProcess[] = [];
const clients: RawClient[] = [];
const extra: WebhookReceiver[] = [];

function nodeArgs(url: string, webhook: string, more: string[] = []): string[] {
  return ['--broker', url, '--insecure', '--webhook', webhook, '--webhook-secret', SECRET, ...FAST_DETECTION.args, ...more];
}

async function connect(node: NodeProcess, user: string): Promise<RawClient> {
  const client = await RawClient.connect(node.ws(`user=${encodeURIComponent(user)}`));
  clients.push(client);
  return client;
}

/** Close `client` and wait until the cluster no longer lists its session (its removal reached the store). */
async function leave(client: RawClient, node: NodeProcess, user: string): Promise<void> {
  const session = client.welcome.session;
  await client.close();
  await vi.waitFor(async () => {
    const { body } = await api(node.url(), 'GET', `/api/users/${encodeURIComponent(user)}`, undefined, null);
    expect((body.sessions as Array<{ session: string }>).map((s) => s.session)).not.toContain(session);
  }, { timeout: 5000, interval: 50 });
}

beforeAll(async () => {
  redis = await startRedis();
  receiver = await WebhookReceiver.start(SECRET);
  a = await startNodeProcess('wh-a', nodeArgs(redis.url, receiver.url));
  b = await startNodeProcess('wh-b', nodeArgs(redis.url, receiver.url));
  nodes.push(a, b);
  // Each node sees the other, so that a death is detected.
  for (const n of nodes) {
    await vi.waitFor(async () => expect((await api(n.url(), 'GET', '/api/nodes', undefined, null)).body.nodes).toHaveLength(2), {
      timeout: 10_000,
      interval: 100,
    });
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([receiver, ...extra].map((r) => r?.close()));
  await redis?.stop();
}, 30_000);

describe('events to --webhook', () => {
  it('reports a user on both nodes online once and offline once, in signed requests', async () => {
    const onA = await connect(a, 'alice');
    await vi.waitFor(() => expect(receiver.typesOf('alice')).toEqual(['online']), { timeout: 5000, interval: 25 });
    const onB = await connect(b, 'alice');
    await leave(onA, a, 'alice');
    await leave(onB, b, 'alice');
    // Events of one user arrive in order: once `offline` is in, nothing from the second session or the first close can follow.
    await vi.waitFor(() => expect(receiver.typesOf('alice')).toEqual(['online', 'offline']), { timeout: 5000, interval: 25 });
    const [online, offline] = receiver.accepted().filter((e) => e.user === 'alice');
    expect(online).toMatchObject({ type: 'online', node: 'wh-a', session: onA.welcome.session });
    expect(offline).toMatchObject({ type: 'offline', node: 'wh-b', session: onB.welcome.session });
    expect(online!.id).not.toBe(offline!.id);
    expect(offline!.ts).toBeGreaterThanOrEqual(online!.ts);
    expect(receiver.requests.length).toBeGreaterThan(0);
    for (const r of receiver.requests) {
      expect(r.signed).toBe(true);
      expect(r.header).toMatch(/^sha256=[0-9a-f]{64}$/);
    }
  });

  it('retries while the backend answers 503: none lost, none out of order, the same ids', async () => {
    receiver.status = 503;
    const users = ['dave', 'erin', 'frank'];
    for (const user of users) {
      // Each user comes and goes twice, on one node and then the other.
      for (const node of [a, b]) await leave(await connect(node, user), node, user);
    }
    await vi.waitFor(() => expect(receiver.requests.filter((r) => r.status === 503).length).toBeGreaterThan(1), { timeout: 10_000, interval: 50 });
    await vi.waitFor(async () => expect(await metric(a.url('/metrics'), 'switchboard_events_pending')).toBe(12), { timeout: 5000, interval: 100 });
    expect(await metric(a.url('/metrics'), 'switchboard_events_oldest_pending_seconds')).toBeGreaterThan(0);
    // The backend stays down a few seconds: the point of the test.
    await sleep(3000);
    const failed = (await metric(a.url('/metrics'), 'switchboard_events_failed_total')) + (await metric(b.url('/metrics'), 'switchboard_events_failed_total'));
    expect(failed).toBeGreaterThan(0);
    receiver.status = 200;
    for (const user of users) {
      await vi.waitFor(() => expect(receiver.typesOf(user)).toEqual(['online', 'offline', 'online', 'offline']), { timeout: 10_000, interval: 50 });
    }
    // Every event refused while the backend was down came again under the same id, unchanged.
    const accepted = new Map(receiver.accepted().map((e) => [e.id, e]));
    const refused = receiver.requests.filter((r) => r.status === 503).flatMap((r) => r.events);
    expect(refused.length).toBeGreaterThan(0);
    for (const e of refused) expect(accepted.get(e.id)).toEqual(e);
    for (const user of users) {
      const nodesSeen = [...new Map(receiver.accepted().filter((e) => e.user === user).map((e) => [e.id, e.node])).values()];
      expect(nodesSeen).toEqual(['wh-a', 'wh-a', 'wh-b', 'wh-b']);
    }
    await vi.waitFor(async () => expect(await metric(a.url('/metrics'), 'switchboard_events_pending')).toBe(0), { timeout: 5000, interval: 100 });
  });

  it('counts the events past --webhook-max-pending as dropped, and delivers the rest', async () => {
    const down = await WebhookReceiver.start(SECRET);
    extra.push(down);
    down.status = 503;
    // A cluster of its own (another key prefix) whose log holds 16 events: one per partition.
    const c = await startNodeProcess('wh-c', nodeArgs(`${redis.url}/?prefix=bound`, down.url, ['--webhook-max-pending', '16']));
    nodes.push(c);
    const users = Array.from({ length: 40 }, (_, i) => `many-${i}`);
    for (const user of users) await connect(c, user);
    // 40 users over 16 partitions: at least 24 do not fit, and every online is either waiting or counted as dropped.
    let dropped = 0;
    await vi.waitFor(async () => {
      dropped = await metric(c.url('/metrics'), 'switchboard_events_dropped_total');
      expect(dropped).toBeGreaterThanOrEqual(24);
      expect(await metric(c.url('/metrics'), 'switchboard_events_pending')).toBe(40 - dropped);
    }, { timeout: 5000, interval: 100 });
    down.status = 200;
    await vi.waitFor(() => expect(new Set(down.accepted().map((e) => e.id)).size).toBe(40 - dropped), { timeout: 10_000, interval: 50 });
    expect(await metric(c.url('/metrics'), 'switchboard_events_sent_total')).toBeGreaterThanOrEqual(40 - dropped);
  });

  it('delivers the offline events of the clients a lone node drains (SIGTERM) before it exits', async () => {
    const alone = await WebhookReceiver.start(SECRET);
    extra.push(alone);
    // A cluster of its own (another key prefix) with this one node: nobody else can deliver its events.
    const d = await startNodeProcess('wh-d', nodeArgs(`${redis.url}/?prefix=alone`, alone.url));
    nodes.push(d);
    await connect(d, 'gina');
    await vi.waitFor(() => expect(alone.typesOf('gina')).toEqual(['online']), { timeout: 5000, interval: 25 });
    await d.stop();
    expect(d.proc.exitCode).toBe(0);
    expect(alone.typesOf('gina')).toEqual(['online', 'offline']);
  });

  it('reports offline for the users of a node killed with SIGKILL within the detection time, and nothing for users still connected elsewhere', async () => {
    const bob = await connect(a, 'bob');
    await connect(a, 'carol');
    const carolOnB = await connect(b, 'carol');
    await vi.waitFor(() => expect([receiver.typesOf('bob'), receiver.typesOf('carol')]).toEqual([['online'], ['online']]), { timeout: 5000, interval: 25 });
    // wh-a took every partition's lease first: its death also tests that wh-b takes the delivery over.
    const killedAt = Date.now();
    await a.kill();
    await vi.waitFor(() => expect(receiver.typesOf('bob')).toEqual(['online', 'offline']), { timeout: DETECTION_MS + DELIVERY_MARGIN_MS + 3000, interval: 25 });
    const offlineAt = Date.now();
    expect(offlineAt - killedAt).toBeLessThanOrEqual(DETECTION_MS + DELIVERY_MARGIN_MS);
    const offline = receiver.accepted().find((e) => e.user === 'bob' && e.type === 'offline');
    expect(offline).toMatchObject({ node: 'wh-a' });
    expect(offline?.session).toBeUndefined();
    void bob;
    // carol is still connected on wh-b: her next event must be the offline of that session, nothing before it.
    await leave(carolOnB, b, 'carol');
    await vi.waitFor(() => expect(receiver.typesOf('carol')).toEqual(['online', 'offline']), { timeout: 5000, interval: 25 });
    expect(receiver.accepted().find((e) => e.user === 'carol' && e.type === 'offline')).toMatchObject({ node: 'wh-b', session: carolOnB.welcome.session });
  });
});
