/**
 * The RabbitMQ broker beyond the conformance suite: its URL, names and
 * message bodies (pure), the store script that tells each receiver its
 * predecessor (against a `redis-server` of its own), and how `start` fails
 * when RabbitMQ or the store cannot be reached.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AmqpBroker } from '../../src/brokers/amqp/amqp-broker.js';
import { decodeBody, numberedBody, plainBody } from '../../src/brokers/amqp/codec.js';
import { AmqpNames } from '../../src/brokers/amqp/names.js';
import { STORE_REQUIRED, parseAmqpUrl } from '../../src/brokers/amqp/url.js';
import type { BrokerHandlers } from '../../src/brokers/broker.js';
import { createBroker } from '../../src/brokers/index.js';
import { RedisStore } from '../../src/brokers/redis/store.js';
import { parseRedisUrl } from '../../src/brokers/redis/url.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { sleep } from '../helpers/wait.js';

const RABBITMQ = 'amqp://guest:guest@127.0.0.1:5672/';
/** Names of our own on the shared RabbitMQ, even when another run of this file is under way. */
const uid = (): string => `u${randomBytes(3).toString('hex')}`;
const noHandlers: BrokerHandlers = { onPublication: () => undefined, onControl: () => undefined, onReadyChange: () => undefined };

describe('amqp url', () => {
  it('takes the store out of the query, encoded or not, and leaves the rest to the client', () => {
    const encoded = parseAmqpUrl('amqp://u:p%40ss@rabbit:5673/vh?store=redis%3A%2F%2F10.0.0.1%3A6380%2F2&prefix=app&heartbeat=3');
    expect(encoded).toMatchObject({ url: 'amqp://u:p%40ss@rabbit:5673/vh?heartbeat=3', where: 'rabbit:5673', prefix: 'app' });
    expect(encoded.store).toMatchObject({ mode: 'standalone', endpoints: [{ host: '10.0.0.1', port: 6380 }], db: 2 });

    const raw = parseAmqpUrl('amqp://rabbit?store=redis+cluster://a:7000,b:7001');
    expect(raw).toMatchObject({ url: 'amqp://rabbit', where: 'rabbit:5672' });
    expect(raw.prefix).toBeUndefined();
    expect(raw.store).toMatchObject({ mode: 'cluster', endpoints: [{ host: 'a', port: 7000 }, { host: 'b', port: 7001 }] });

    const tls = parseAmqpUrl('amqps://user:secret@rabbit/?store=rediss://:pw@r:6390');
    expect(tls).toMatchObject({ url: 'amqps://user:secret@rabbit/', where: 'rabbit:5671' });
    expect(tls.store).toMatchObject({ tls: true, password: 'pw', endpoints: [{ host: 'r', port: 6390 }] });
  });

  it('refuses a URL without a store, in one clear line', async () => {
    expect(parseAmqpUrl('amqp://rabbit').store).toBeUndefined();
    for (const spec of ['amqp://rabbit', 'amqp://rabbit:5672/?prefix=x', 'amqps://rabbit?store=']) {
      expect(() => new AmqpBroker(spec)).toThrow(STORE_REQUIRED);
      await expect(createBroker(spec)).rejects.toThrow(STORE_REQUIRED);
    }
    expect(STORE_REQUIRED).not.toContain('\n');
    expect(() => new AmqpBroker('amqp://u:hunter2@rabbit?store=http://x')).toThrow(/\?store= of the RabbitMQ URL: not a redis/);
    expect(() => new AmqpBroker('amqp://u:hunter2@rabbit?store=http://x')).not.toThrow(/hunter2/);
    expect(() => new AmqpBroker('amqp://rabbit?store=redis://r&prefix=has space')).toThrow(/prefix/);
  });

  it('is what createBroker picks for amqp:// and amqps://', async () => {
    const broker = await createBroker(`${RABBITMQ}?store=redis://127.0.0.1:6379`);
    expect(broker).toBeInstanceOf(AmqpBroker);
    expect(broker.kind).toBe('rabbitmq');
    expect([...broker.routes].sort()).toEqual(['all', 'nodes', 'subscribers']);
  });
});

describe('amqp names', () => {
  const names = new AmqpNames('p');

  it('prefixes every exchange and queue', () => {
    expect([names.topic, names.fanout, names.direct, names.queue('n1')]).toEqual(['p.topic', 'p.fanout', 'p.direct', 'p.node.n1']);
  });

  it('maps a channel to one topic word, one-to-one', () => {
    expect(names.routingKey('chat:room.1')).toBe('chat:room~1');
    expect(names.routingKey('user:a@b.c,d=e')).toBe('user:a@b~c,d=e');
    const long = `chat:${'x'.repeat(300)}`;
    const odd = ['chat:a~1', 'chat:a b', 'chat:a#b', 'chat:ü', long];
    const keys = odd.map((c) => names.routingKey(c));
    for (const k of keys) {
      expect(k).toMatch(/^![A-Za-z0-9_-]{43}$/);
      expect(k).not.toMatch(/[.*#]/);
    }
    expect(new Set([...keys, names.routingKey('chat:a.1'), names.anchor]).size).toBe(odd.length + 2);
    expect(names.routingKey(`chat:${'x'.repeat(250)}`)).toHaveLength(255);
  });
});

describe('amqp message bodies', () => {
  it('carry a plain publication as the Redis envelope does', () => {
    const stored = JSON.stringify({ channel: 'c', data: { a: [1, 'é'] }, from: 'u' });
    expect(decodeBody(plainBody(stored, 42), 'n1')).toEqual({ pub: { channel: 'c', data: { a: [1, 'é'] }, from: 'u', ts: 42 } });
  });

  it('give each receiver its own predecessor', () => {
    const stored = JSON.stringify({ channel: 'c', data: 1 });
    const body = numberedBody(stored, 42, 9, 'ep', 5000, { node: '', offset: 7, at: 4000 }, [{ node: 'n"2', offset: 8, at: 4500 }]);
    expect(decodeBody(body, 'n1')).toEqual({
      pub: { channel: 'c', data: 1, ts: 42, offset: 9, epoch: 'ep' },
      order: { prev: 7, prevAt: 4000, at: 5000 },
    });
    expect(decodeBody(body, 'n"2')?.order).toEqual({ prev: 8, prevAt: 4500, at: 5000 });
  });

  it('refuse what is not one', () => {
    for (const text of ['', 'null', '{"t":1}', '{"t":1,"p":{"channel":1}}', '{"o":1,"e":"x","t":1,"p":{"channel":"c"}}', '{"o":1,"e":"x","t":1,"s":2,"v":[1],"p":{"channel":"c"}}']) {
      expect(decodeBody(text, 'n')).toBeUndefined();
    }
  });
});

describe('amqp broker with a store', () => {
  let redis: RedisProcess;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('the store script gives every receiver the publication routed to it before', async () => {
    const store = new RedisStore(parseRedisUrl(redis.url), { onChange: () => undefined, onError: () => undefined }, { prefix: 'u1' });
    store.connect();
    try {
      await vi.waitFor(() => expect(store.ready).toBe(true), { timeout: 5_000, interval: 20 });
      const c = 'chat:prevs';
      const policy = { size: 10, ttlMs: 60_000 };
      const put = (route: Parameters<typeof store.streams.storeRouted>[2], history: typeof policy | null = policy) =>
        store.streams.storeRouted({ channel: c, data: 0, ts: 1 }, history, route);
      await store.registry.add('r', [c]);

      const s1 = await put({ to: 'all' });
      expect(s1).toMatchObject({ offset: 1, prevs: [{ node: '', offset: 0, at: 0 }] });
      const s2 = await put({ to: 'nodes', nodes: ['a', 'b', 'a'], registered: true });
      expect(s2.offset).toBe(2);
      expect(s2.prevs).toEqual(['a', 'b', 'r'].map((node) => ({ node, offset: 1, at: s1.at })));
      const s3 = await put({ to: 'nodes', nodes: ['a'], registered: false });
      expect(s3.prevs).toEqual([{ node: 'a', offset: 2, at: s2.at }]);
      // everyone gets the broadcast; a, b and r each after their own last inbox publication
      const s4 = await put({ to: 'subscribers' });
      expect(s4.prevs[0]).toEqual({ node: '', offset: 1, at: s1.at });
      expect(s4.prevs.slice(1).sort((x, y) => x.node.localeCompare(y.node))).toEqual([
        { node: 'a', offset: 3, at: s3.at },
        { node: 'b', offset: 2, at: s2.at },
        { node: 'r', offset: 2, at: s2.at },
      ]);
      // after a broadcast, its offset is everyone's predecessor
      const s5 = await put({ to: 'nodes', nodes: ['b'], registered: false });
      expect(s5.prevs).toEqual([{ node: 'b', offset: 4, at: s4.at }]);
      // without history: nothing numbered, the registry still read
      expect(await put({ to: 'nodes', nodes: ['x'], registered: true }, null)).toEqual({
        at: 0,
        prevs: [{ node: 'x', offset: 0, at: 0 }, { node: 'r', offset: 0, at: 0 }],
      });
      expect((await store.streams.range(c, 2, 4, 10)).messages.map((m) => m.offset)).toEqual([2, 3, 4]);
      expect(await store.streams.range(c, 1, 0, 1)).toMatchObject({ top: 5, messages: [] });
      expect(await store.streams.range('chat:none', 1, 0, 1)).toEqual({ epoch: '', top: 0, messages: [] });
    } finally {
      await store.close();
    }
  });

  it('keeps offset order when one channel mixes `all` and `nodes` concurrently (a hash ring settling)', async () => {
    const url = `${RABBITMQ}?store=${redis.url}&prefix=${uid()}`;
    const faults: string[] = [];
    const nodes = await Promise.all(
      ['a', 'b', 'c'].map(async (id) => {
        const broker = new AmqpBroker(url, { onError: (err, where) => void faults.push(`${where}: ${err.message}`) });
        const offsets: number[] = [];
        await broker.start(id, { ...noHandlers, onPublication: (p) => void offsets.push(p.offset!) });
        return { id, broker, offsets };
      }),
    );
    const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    try {
      const channel = 'user:mixed';
      const policy = { size: 1000, ttlMs: 60_000 };
      const N = 300;
      const results = await Promise.all(
        Array.from({ length: N }, (_, i) => [
          a.broker.publish({ channel, data: i, ts: Date.now() }, policy, { to: 'all' }),
          b.broker.publish({ channel, data: i, ts: Date.now() }, policy, { to: 'nodes', nodes: [c.id], registered: false }),
        ]).flat(),
      );
      const broadcast = results.filter((_, i) => i % 2 === 0).map((r) => r.offset!).sort((x, y) => x - y);
      await vi.waitFor(() => expect(c.offsets).toHaveLength(2 * N), { timeout: 5_000, interval: 20 });
      // c gets both kinds, in offset order; a and b only the broadcasts, in order
      expect(c.offsets).toEqual(Array.from({ length: 2 * N }, (_, i) => i + 1));
      for (const n of [a, b]) await vi.waitFor(() => expect(n.offsets).toEqual(broadcast), { timeout: 5_000, interval: 20 });
      for (const n of nodes) expect(n.broker.ordering).toMatchObject({ filled: 0, skipped: 0 });
      expect(faults).toEqual([]);
    } finally {
      await Promise.all(nodes.map((n) => n.broker.close()));
    }
  });

  it('start rejects within about 5 s, naming RabbitMQ, when it cannot be reached', async () => {
    const port = await freePort();
    const broker = new AmqpBroker(`amqp://127.0.0.1:${port}?store=${redis.url}`);
    const t0 = Date.now();
    await expect(broker.start('n', noHandlers)).rejects.toThrow(new RegExp(`^rabbitmq at 127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED.*\\) not reachable within 5000 ms$`));
    expect(Date.now() - t0).toBeGreaterThan(4_500);
    expect(Date.now() - t0).toBeLessThan(7_000);
    expect(broker.ready).toBe(false);
    await broker.close();
  });

  it('start rejects, naming the store only, when the store cannot be reached', async () => {
    const port = await freePort();
    const broker = new AmqpBroker(`${RABBITMQ}?store=redis://127.0.0.1:${port}&prefix=${uid()}`, { startTimeoutMs: 1500 });
    await expect(broker.start('n', noHandlers)).rejects.toThrow(new RegExp(`^the redis store at 127\\.0\\.0\\.1:${port} \\(.*\\) not reachable within 1500 ms$`));
    await broker.close();
  });

  it('refuses calls before start and after close; close is idempotent and nothing arrives afterwards', async () => {
    const url = `${RABBITMQ}?store=${redis.url}&prefix=${uid()}`;
    const a = new AmqpBroker(url);
    const b = new AmqpBroker(url);
    await expect(a.publish({ channel: 'c', data: 1, ts: 1 }, null)).rejects.toThrow(/not started/);
    const got: unknown[] = [];
    await a.start('a', { ...noHandlers, onPublication: (p) => void got.push(p.data), onControl: (c) => void got.push(c) });
    await b.start('b', noHandlers);
    await expect(a.start('a', noHandlers)).rejects.toThrow(/already started/);
    await a.subscribe('chat:z');
    await b.publish({ channel: 'chat:z', data: 'before', ts: 1 }, null);
    await vi.waitFor(() => expect(got).toEqual(['before']), { timeout: 5_000, interval: 20 });
    await Promise.all([a.close(), a.close()]);
    await b.publish({ channel: 'chat:z', data: 'after', ts: 1 }, null);
    await b.sendControl('a', 'after');
    // Pause, not a wait: nothing may arrive after close.
    await sleep(200);
    expect(got).toEqual(['before']);
    await expect(a.subscribe('chat:z')).rejects.toThrow(/not started/);
    await b.close();
  });
});
