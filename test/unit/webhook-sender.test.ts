/**
 * The webhook sender over the in-process event log, with the HTTP request
 * replaced by a function the test scripts: batches, signatures, retries
 * with the same ids, the pending bound reported in metrics and logs, and
 * partitions shared between nodes and taken over from a dead one.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Broker, PresenceItem } from '../../src/brokers/broker.js';
import { EVENT_PARTITIONS } from '../../src/brokers/events.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { WebhookSender, createWebhookSender, type Post, type WebhookOptions } from '../../src/server/events/webhook.js';
import { Metrics } from '../../src/server/metrics.js';
import { withDefaults } from '../../src/server/options.js';
import { parseWebhook, type WebhookEvent } from '../../src/server-sdk/index.js';

const SECRET = 'sender-test-secret';
const OPTIONS: WebhookOptions = { url: 'http://backend.test/events', secret: SECRET, batch: 3, timeoutMs: 1000, leaseMs: 60_000, maxPending: 100_000 };

interface Rig {
  broker: Broker;
  sender: WebhookSender;
  metrics: Metrics;
  logs: Array<Record<string, unknown>>;
  /** Bodies the sender posted, parsed (the signature checked), with what the scripted backend answered. */
  posts: Array<{ events: WebhookEvent[]; ok: boolean }>;
}

const senders: WebhookSender[] = [];
afterEach(async () => {
  await Promise.all(senders.splice(0).map((s) => s.stop()));
});

const noop = { onPublication: () => undefined, onReadyChange: () => undefined, onControl: () => undefined };

/** A node `id` on `bus` with a sender whose backend answers `answer()` (true: 2xx). */
async function rig(bus: MemoryBus, id: string, answer: () => boolean = () => true, options: Partial<WebhookOptions> = {}, liveNodes: () => number = () => 1): Promise<Rig> {
  const broker = new MemoryBroker(bus);
  await broker.start(id, noop);
  const metrics = new Metrics({ node: id });
  const logs: Rig['logs'] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const posts: Rig['posts'] = [];
  const post: Post = async (body, signature) => {
    const ok = answer();
    posts.push({ events: parseWebhook(body, signature, SECRET), ok });
    return ok;
  };
  const sender = new WebhookSender(broker.events!, id, { ...OPTIONS, ...options }, metrics, logger, liveNodes, post);
  senders.push(sender);
  sender.start();
  return { broker, sender, metrics, logs, posts };
}

function item(user: string, session: string, node: string): PresenceItem {
  return { channel: `user:${user}`, entry: { user, session, node } };
}

async function value(metrics: Metrics, name: string): Promise<number> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

/** The delivered events (answered 2xx), ids deduplicated, in delivery order. */
function delivered(r: Rig): WebhookEvent[] {
  const seen = new Map<string, WebhookEvent>();
  for (const p of r.posts) if (p.ok) for (const e of p.events) if (!seen.has(e.id)) seen.set(e.id, e);
  return [...seen.values()];
}

describe('the webhook sender', () => {
  it('posts signed batches of at most --webhook-batch, each user in order, and forgets what was answered', async () => {
    const r = await rig(new MemoryBus(), 'n1');
    for (let round = 0; round < 4; round++) {
      await r.broker.store.presenceAdd([item('ann', `a${round}`, 'n1')]);
      await r.broker.store.presenceRemove([item('ann', `a${round}`, 'n1')]);
    }
    await vi.waitFor(() => expect(delivered(r)).toHaveLength(8), { timeout: 3000, interval: 10 });
    expect(delivered(r).map((e) => `${e.type} ${e.session}`)).toEqual(
      [0, 1, 2, 3].flatMap((i) => [`online a${i}`, `offline a${i}`]),
    );
    for (const p of r.posts) expect(p.events.length).toBeLessThanOrEqual(OPTIONS.batch);
    expect(await value(r.metrics, 'switchboard_events_sent_total')).toBe(8);
    await vi.waitFor(async () => expect(await r.broker.events!.backlog()).toMatchObject({ pending: 0, oldestTs: null }), { timeout: 2000, interval: 10 });
  });

  it('sends a refused batch again with the same ids, counts the failures and logs the outage once', async () => {
    let down = true;
    const r = await rig(new MemoryBus(), 'n1', () => !down);
    await r.broker.store.presenceAdd([item('bea', 'b1', 'n1')]);
    await vi.waitFor(() => expect(r.posts.filter((p) => !p.ok).length).toBeGreaterThanOrEqual(3), { timeout: 5000, interval: 10 });
    expect(await value(r.metrics, 'switchboard_events_failed_total')).toBeGreaterThanOrEqual(3);
    await vi.waitFor(async () => expect(await value(r.metrics, 'switchboard_events_pending')).toBe(1), { timeout: 3000, interval: 10 });
    down = false;
    await vi.waitFor(() => expect(delivered(r)).toHaveLength(1), { timeout: 6000, interval: 10 });
    const ids = new Set(r.posts.flatMap((p) => p.events.map((e) => e.id)));
    expect(ids.size).toBe(1);
    expect(r.logs.filter((l) => String(l.msg).startsWith('webhook request failed'))).toHaveLength(1);
    expect(r.logs.filter((l) => l.msg === 'webhook answers again')).toHaveLength(1);
  });

  it('counts and logs the events that do not fit --webhook-max-pending', async () => {
    const r = await rig(new MemoryBus(), 'n1', () => false, { maxPending: EVENT_PARTITIONS });
    const users = Array.from({ length: 40 }, (_, i) => `many-${i}`);
    await r.broker.store.presenceAdd(users.map((u) => item(u, `${u}-s`, 'n1')));
    const dropped = await value(r.metrics, 'switchboard_events_dropped_total');
    expect(dropped).toBeGreaterThanOrEqual(40 - EVENT_PARTITIONS);
    expect((await r.broker.events!.backlog()).pending).toBe(40 - dropped);
    // The first drop is logged at once; the next ones together, at most every 10 s.
    const warnings = () => r.logs.filter((l) => l.msg === 'event log full (--webhook-max-pending): events dropped');
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ level: 40, dropped: 1, maxPending: EVENT_PARTITIONS, last: { type: 'online' } });
    await r.sender.tick(Date.now() + 5_000);
    expect(warnings()).toHaveLength(1);
    await r.sender.tick(Date.now() + 11_000);
    expect(warnings()).toHaveLength(2);
    expect(warnings()[1]).toMatchObject({ dropped: dropped - 1, last: { type: 'online' } });
    await r.sender.tick(Date.now() + 30_000);
    expect(warnings()).toHaveLength(2);
  });

  it('shares the partitions between nodes, and takes over those of a node declared dead', async () => {
    const bus = new MemoryBus();
    let live = 2;
    const a = await rig(bus, 'n1', () => true, {}, () => live);
    const b = await rig(bus, 'n2', () => true, {}, () => live);
    const users = Array.from({ length: 64 }, (_, i) => `share-${i}`);
    await a.broker.store.presenceAdd(users.map((u) => item(u, `${u}-s`, 'n1')));
    await vi.waitFor(() => expect(delivered(a).length + delivered(b).length).toBe(64), { timeout: 3000, interval: 10 });
    expect(delivered(a).length).toBeGreaterThan(0);
    expect(delivered(b).length).toBeGreaterThan(0);
    // n1 stops delivering without releasing (as if killed); n2 frees its leases as the cluster declares it dead.
    await a.sender.stop();
    await a.broker.events!.claim('n1', 60_000, EVENT_PARTITIONS);
    live = 1;
    await b.sender.releaseNode('n1');
    await b.broker.store.dropNode('n1');
    await vi.waitFor(() => expect(delivered(b).filter((e) => e.type === 'offline')).toHaveLength(64), { timeout: 5000, interval: 10 });
  });

  it('takes the partitions left free by nodes that count as live but send no events', async () => {
    // Two live nodes, of which only this one has a webhook: its even share is 8, yet every partition gets delivered.
    const r = await rig(new MemoryBus(), 'n1', () => true, { leaseMs: 300 }, () => 2);
    const users = Array.from({ length: 64 }, (_, i) => `left-${i}`);
    await r.broker.store.presenceAdd(users.map((u) => item(u, `${u}-s`, 'n1')));
    await vi.waitFor(() => expect(delivered(r)).toHaveLength(64), { timeout: 5000, interval: 20 });
    expect(new Set(delivered(r).map((e) => e.id.split('-')[0])).size).toBe(EVENT_PARTITIONS);
  });

  it('is made only with a secret and on a broker that keeps an event log', () => {
    const metrics = new Metrics({ node: 'n1' });
    const log = pino({ level: 'silent' });
    const options = withDefaults({ nodeId: 'n1', webhook: 'http://backend.test/events' });
    const withLog = new MemoryBroker();
    expect(createWebhookSender({ ...options, webhook: undefined }, withLog, metrics, log, () => 1)).toBeUndefined();
    expect(() => createWebhookSender(options, withLog, metrics, log, () => 1)).toThrow(/webhookSecret/);
    const noLog: Pick<Broker, 'kind' | 'events'> = { kind: 'nats' };
    expect(() => createWebhookSender({ ...options, webhookSecret: 'k' }, noLog, metrics, log, () => 1)).toThrow(/the nats broker keeps no event log/);
    expect(createWebhookSender({ ...options, webhookSecret: 'k' }, withLog, metrics, log, () => 1)).toBeInstanceOf(WebhookSender);
  });
});
