/**
 * The NATS broker through real outages: a nats-server killed with SIGKILL
 * and started again on the same port and store, and, in a 3-server
 * cluster, the server a broker is connected to killed for good. Readiness
 * follows, operations fail fast while down, subscriptions come back without
 * a new broker, and history kept by JetStream survives.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BrokerHandlers, BrokerPublication, Route } from '../../src/brokers/broker.js';
import type { HistoryPolicy } from '../../src/brokers/history.js';
import { NatsBroker } from '../../src/brokers/nats/nats-broker.js';
import { startNats, startNatsCluster, type NatsCluster, type NatsProcess } from '../helpers/nats-server.js';

const POLICY: HistoryPolicy = { size: 100, ttlMs: 600_000 };

interface Node {
  broker: NatsBroker;
  pubs: BrokerPublication[];
  controls: string[];
  readyChanges: boolean[];
  got(channel: string): unknown[];
}

let cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  cleanups = [];
});

async function node(url: string, id: string, prefix: string, extra: { routes?: ReadonlyArray<Route['to']>; replicas?: number } = {}): Promise<Node> {
  const pubs: BrokerPublication[] = [];
  const controls: string[] = [];
  const readyChanges: boolean[] = [];
  const handlers: BrokerHandlers = {
    onPublication: (p) => void pubs.push(p),
    onControl: (c) => void controls.push(c),
    onReadyChange: (r) => void readyChanges.push(r),
  };
  const broker = new NatsBroker(url, { prefix, requestTimeoutMs: 2000, pingIntervalMs: 1000, ...extra });
  cleanups.push(() => broker.close());
  await broker.start(id, handlers);
  return { broker, pubs, controls, readyChanges, got: (channel) => pubs.filter((p) => p.channel === channel).map((p) => p.data) };
}

const pub = (n: Node, channel: string, data: unknown, history: HistoryPolicy | null = POLICY, route?: Route) =>
  n.broker.publish({ channel, data, ts: Date.now() }, history, route);

/** Rejects, and within `ms`. */
async function rejectsFast(p: Promise<unknown>, ms = 1000): Promise<void> {
  const t0 = Date.now();
  await expect(p).rejects.toThrow();
  expect(Date.now() - t0).toBeLessThan(ms);
}

describe('nats broker outage: one server killed and restarted', () => {
  for (const mode of ['interest', 'all'] as const) {
    it(`${mode} mode: readiness goes false then true, subscriptions come back, history survives`, async () => {
      const server: NatsProcess = await startNats();
      cleanups.push(() => server.stop());
      const prefix = `o${randomBytes(3).toString('hex')}`;
      const routes: ReadonlyArray<Route['to']> = mode === 'all' ? ['all'] : ['subscribers'];
      const [a, b] = await Promise.all([node(server.url, 'a', prefix, { routes }), node(server.url, 'b', prefix, { routes })]);
      const room = 'chat:outage';
      await a.broker.subscribe(room);
      await b.broker.subscribe(room);
      const first = await pub(b, room, 'before');
      expect(first.offset).toBe(1);
      await vi.waitFor(() => expect(a.got(room)).toEqual(['before']), { timeout: 5_000, interval: 20 });

      await server.kill();
      await vi.waitFor(() => expect([a.broker.ready, b.broker.ready]).toEqual([false, false]), { timeout: 5_000, interval: 20 });
      expect(a.readyChanges).toEqual([false]);
      // Everything fails at once while down, nothing hangs.
      await rejectsFast(pub(a, room, 'while down'));
      await rejectsFast(pub(a, room, 'while down, no history', null));
      await rejectsFast(a.broker.store.history(room, { limit: 10 }, POLICY));
      await rejectsFast(a.broker.store.presence(room));
      await rejectsFast(a.broker.store.presenceAdd([{ channel: room, entry: { user: 'u', session: 's', node: 'a' } }]));
      await rejectsFast(a.broker.sendControl(null, 'ctl'));
      await rejectsFast(a.broker.subscribe('chat:other'));

      await server.restart();
      await vi.waitFor(() => expect([a.readyChanges, b.readyChanges]).toEqual([[false, true], [false, true]]), { timeout: 15_000, interval: 20 });
      expect(a.broker.ready).toBe(true);

      // The same brokers receive again: the subscriptions came back by themselves.
      expect(await pub(b, room, 'after')).toEqual({ offset: 2, epoch: first.epoch });
      await pub(a, room, 'live', null);
      await vi.waitFor(() => expect(a.got(room)).toEqual(['before', 'after', 'live']), { timeout: 5_000, interval: 20 });
      await vi.waitFor(() => expect(b.got(room)).toEqual(['before', 'after', 'live']), { timeout: 5_000, interval: 20 });
      // What JetStream stored before the crash is still there.
      const page = await a.broker.store.history(room, { since: 0, limit: 10 }, POLICY);
      expect(page).toMatchObject({ offset: 2, epoch: first.epoch, earliest: 1 });
      expect(page.messages.map((m) => m.data)).toEqual(['before', 'after']);
      // A subscription made while down was kept: it works now.
      await vi.waitFor(() => expect(a.broker.ready).toBe(true), { timeout: 5_000, interval: 20 });
      await pub(b, 'chat:other', 'x', null);
      await vi.waitFor(() => expect(a.got('chat:other')).toEqual(['x']), { timeout: 5_000, interval: 20 });
      await a.broker.sendControl(null, 'back');
      await vi.waitFor(() => expect(b.controls).toEqual(['back']), { timeout: 5_000, interval: 20 });
    });
  }
});

describe('nats broker outage: a cluster server dies', () => {
  let cluster: NatsCluster | undefined;

  it('a broker whose server died reconnects to another and keeps working', async () => {
    cluster = await startNatsCluster(3);
    cleanups.push(() => cluster!.stop());
    const prefix = `o${randomBytes(3).toString('hex')}`;
    const [s0, s1] = cluster.nodes as [NatsProcess, NatsProcess, NatsProcess];
    // `a` knows only s0; it learns the others from it. `b` has the whole seed list.
    const a = await node(s0.url, 'a', prefix, { replicas: 3 });
    const b = await node(`${s1.url},${cluster.url.slice('nats://'.length)}`, 'b', prefix, { replicas: 3 });
    const room = 'chat:failover';
    await a.broker.subscribe(room);
    await b.broker.subscribe(room);
    const first = await pub(b, room, 'before');
    await vi.waitFor(() => expect(a.got(room)).toEqual(['before']), { timeout: 5_000, interval: 20 });
    await a.broker.store.presenceAdd([{ channel: room, entry: { user: 'u1', session: 's1', node: 'a' } }]);

    await s0.kill();
    await vi.waitFor(() => expect(a.readyChanges).toEqual([false, true]), { timeout: 20_000, interval: 20 });
    expect(a.broker.ready).toBe(true);

    // Streams replicated 3 times elect a new leader if theirs died: publish as soon as they do.
    const after = await vi.waitFor(() => pub(a, room, 'after'), { timeout: 20_000, interval: 250 });
    expect(after).toEqual({ offset: 2, epoch: first.epoch });
    await vi.waitFor(() => expect(b.got(room)).toEqual(['before', 'after']), { timeout: 5_000, interval: 20 });
    await vi.waitFor(() => expect(a.got(room)).toEqual(['before', 'after']), { timeout: 5_000, interval: 20 });
    await pub(b, room, 'live', null);
    await vi.waitFor(() => expect(a.got(room)).toEqual(['before', 'after', 'live']), { timeout: 5_000, interval: 20 });
    // Other streams (the presence bucket's) may still be electing a leader
    // on a loaded machine: a request then times out, and is asked again.
    await vi.waitFor(async () => {
      const page = await a.broker.store.history(room, { since: 0, limit: 10 }, POLICY);
      expect(page.messages.map((m) => m.data)).toEqual(['before', 'after']);
    }, { timeout: 20_000, interval: 250 });
    await vi.waitFor(async () => expect(await b.broker.store.presence(room)).toEqual([{ user: 'u1', session: 's1', node: 'a' }]), { timeout: 20_000, interval: 250 });
    await b.broker.sendControl(null, 'still here');
    await vi.waitFor(() => expect(a.controls).toEqual(['still here']), { timeout: 5_000, interval: 20 });
  });
});

describe('the nats-server test helper', () => {
  it('tells a server that died on its own from one it was asked to stop, with the signal and the log', async () => {
    const server = await startNats();
    cleanups.push(() => server.stop());
    server.assertAlive();
    process.kill(server.pid!, 'SIGKILL');
    await vi.waitFor(
      () => expect(() => server.assertAlive()).toThrow(/exited on its own \(code null, signal SIGKILL\); its log ends:\n[\s\S]*Server is ready/),
      { timeout: 5_000, interval: 20 },
    );
    await server.restart();
    server.assertAlive();
    await server.kill();
    server.assertAlive();
  });
});
