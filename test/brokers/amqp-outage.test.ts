/**
 * The RabbitMQ broker through outages, without disturbing the RabbitMQ
 * other tests share: the broker under test reaches it through a TCP proxy
 * that the test cuts and restores; its store is a `redis-server` of this
 * file's own, killed and restarted. The same broker object must come back
 * by itself, with its queue, bindings and consumer in place.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { AmqpBroker, type AmqpBrokerOptions } from '../../src/brokers/amqp/amqp-broker.js';
import type { BrokerPublication, Route } from '../../src/brokers/broker.js';
import type { HistoryPolicy } from '../../src/brokers/history.js';
import { flushAll, startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const RABBITMQ_PORT = 5672;
const LONG: HistoryPolicy = { size: 100, ttlMs: 60_000 };
const ALL: Route = { to: 'all' };
const toNodes = (nodes: string[]): Route => ({ to: 'nodes', nodes, registered: false });

interface Node {
  id: string;
  broker: AmqpBroker;
  pubs: BrokerPublication[];
  controls: string[];
  readyChanges: boolean[];
  faults: string[];
  got(channel: string): unknown[];
}

describe('rabbitmq broker: outages', () => {
  let redis: RedisProcess;
  let proxy: TcpProxy;
  let prefix = '';
  const brokers: AmqpBroker[] = [];

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });
  beforeEach(async () => {
    prefix = `o${randomBytes(3).toString('hex')}`;
    proxy = await startTcpProxy(RABBITMQ_PORT);
  });
  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
    await proxy.close();
    await flushAll([redis.port]).catch(() => undefined);
  });

  async function start(label: string, port: number, options: AmqpBrokerOptions = {}): Promise<Node> {
    const id = `${prefix}-${label}`;
    const faults: string[] = [];
    // The store URL unencoded in the query, as people type it.
    const broker = new AmqpBroker(`amqp://guest:guest@127.0.0.1:${port}/?store=${redis.url}&prefix=${prefix}`, {
      maxBackoffMs: 200,
      onError: (err, where) => void faults.push(`${where}: ${err.message}`),
      ...options,
    });
    brokers.push(broker);
    const node: Node = {
      id,
      broker,
      pubs: [],
      controls: [],
      readyChanges: [],
      faults,
      got: (channel) => node.pubs.filter((p) => p.channel === channel).map((p) => p.data),
    };
    await broker.start(id, {
      onPublication: (p) => void node.pubs.push(p),
      onControl: (c) => void node.controls.push(c),
      onReadyChange: (r) => void node.readyChanges.push(r),
    });
    return node;
  }

  const send = (n: Node, channel: string, data: unknown, route: Route = { to: 'subscribers' }, history: HistoryPolicy | null = LONG) =>
    n.broker.publish({ channel, data, ts: Date.now() }, history, route);

  it('while RabbitMQ is cut off: not ready, calls reject fast; back: queue, bindings and consumer restored, the gap filled', async () => {
    const a = await start('a', proxy.port);
    const b = await start('b', RABBITMQ_PORT);
    const room = 'chat:room';
    const bcast = 'chat:bcast';
    const inbox = 'user:u1';
    await a.broker.subscribe(room);
    await send(b, room, 'r1');
    await send(b, bcast, 'b1', ALL);
    await send(b, inbox, 'i1', toNodes([a.id]));
    await vi.waitFor(() => expect([a.got(room), a.got(bcast), a.got(inbox)]).toEqual([['r1'], ['b1'], ['i1']]), { timeout: 5_000, interval: 20 });

    proxy.cut();
    await vi.waitFor(() => expect(a.broker.ready).toBe(false), { timeout: 5_000, interval: 20 });
    expect(a.readyChanges).toEqual([false]);
    for (const call of [
      () => send(a, room, 'refused'),
      () => send(a, room, 'refused', { to: 'subscribers' }, null),
      () => a.broker.sendControl(null, 'refused'),
      () => a.broker.subscribe('chat:other'),
    ]) {
      const t0 = Date.now();
      await expect(call()).rejects.toThrow(/unreachable/);
      expect(Date.now() - t0).toBeLessThan(200);
    }
    // Published meanwhile: missed by the queue that went away, still in history.
    await send(b, room, 'r2');
    await send(b, bcast, 'b2', ALL);
    await send(b, inbox, 'i2', toNodes([a.id]));

    proxy.restore();
    await vi.waitFor(() => expect(a.broker.ready).toBe(true), { timeout: 10_000, interval: 20 });
    expect(a.readyChanges).toEqual([false, true]);

    await send(b, room, 'r3');
    await send(b, bcast, 'b3', ALL);
    await send(b, inbox, 'i3', toNodes([a.id]));
    // Each arrives over a binding made anew; what it follows is filled from history, in order, once.
    await vi.waitFor(
      () => expect([a.got(room), a.got(bcast), a.got(inbox)]).toEqual([['r1', 'r2', 'r3'], ['b1', 'b2', 'b3'], ['i1', 'i2', 'i3']]),
      { timeout: 5_000, interval: 20 },
    );
    expect(a.broker.ordering).toMatchObject({ filled: 3, skipped: 0 });

    // Control both ways, and a's own publications.
    await b.broker.sendControl(a.id, 'to-a');
    await a.broker.sendControl(null, 'from-a');
    await vi.waitFor(() => expect(a.controls).toEqual(['to-a', 'from-a']), { timeout: 5_000, interval: 20 });
    await vi.waitFor(() => expect(b.controls).toEqual(['from-a']), { timeout: 5_000, interval: 20 });
    await b.broker.subscribe(room);
    expect(await send(a, room, 'r4')).toMatchObject({ offset: 4 });
    await vi.waitFor(() => expect(b.got(room)).toEqual(['r4']), { timeout: 5_000, interval: 20 });
    await vi.waitFor(() => expect(a.got(room)).toEqual(['r1', 'r2', 'r3', 'r4']), { timeout: 5_000, interval: 20 });
    expect(b.faults).toEqual([]);
  });

  it('survives RabbitMQ refusing connections for a while (several attempts), then comes back', async () => {
    const a = await start('a', proxy.port);
    const b = await start('b', RABBITMQ_PORT);
    await a.broker.subscribe('chat:x');
    proxy.cut();
    await vi.waitFor(() => expect(a.broker.ready).toBe(false), { timeout: 5_000, interval: 20 });
    // Until several reconnection attempts have been refused.
    await vi.waitUntil(() => a.faults.length > 2, { timeout: 10_000, interval: 20 });
    expect(a.faults.length).toBeGreaterThan(2);
    proxy.restore();
    await vi.waitFor(() => expect(a.broker.ready).toBe(true), { timeout: 10_000, interval: 20 });
    expect(a.readyChanges).toEqual([false, true]);
    await send(b, 'chat:x', 'back', { to: 'subscribers' }, null);
    await vi.waitFor(() => expect(a.got('chat:x')).toEqual(['back']), { timeout: 5_000, interval: 20 });
  });

  it('while the Redis store is down: not ready, calls reject fast; back: ready, numbering restarts under a new epoch', async () => {
    const a = await start('a', RABBITMQ_PORT);
    const b = await start('b', RABBITMQ_PORT);
    const room = 'chat:room';
    await a.broker.subscribe(room);
    const first = await send(b, room, 'r1');
    await vi.waitFor(() => expect(a.got(room)).toEqual(['r1']), { timeout: 5_000, interval: 20 });

    await redis.kill();
    await vi.waitFor(() => expect(a.broker.ready).toBe(false), { timeout: 5_000, interval: 20 });
    expect(a.readyChanges).toEqual([false]);
    for (const call of [
      () => send(a, room, 'refused'),
      () => a.broker.store.history(room, { limit: 10 }, LONG),
      () => a.broker.store.presence(room),
      () => a.broker.registry.register([room]),
    ]) {
      const t0 = Date.now();
      await expect(call()).rejects.toThrow();
      expect(Date.now() - t0).toBeLessThan(200);
    }
    // RabbitMQ alone still carries control messages.
    await a.broker.sendControl(b.id, 'ctl');
    await vi.waitFor(() => expect(b.controls).toEqual(['ctl']), { timeout: 5_000, interval: 20 });

    await redis.restart();
    await vi.waitFor(() => expect(a.broker.ready).toBe(true), { timeout: 10_000, interval: 20 });
    await vi.waitFor(() => expect(b.broker.ready).toBe(true), { timeout: 10_000, interval: 20 });
    expect(a.readyChanges).toEqual([false, true]);
    const second = await send(b, room, 'r2');
    expect(second.offset).toBe(1);
    expect(second.epoch).not.toBe(first.epoch);
    await vi.waitFor(() => expect(a.got(room)).toEqual(['r1', 'r2']), { timeout: 5_000, interval: 20 });
    expect(a.pubs.map((p) => p.epoch)).toEqual([first.epoch, second.epoch]);
  });
});
