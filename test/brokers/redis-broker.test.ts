/**
 * The Redis broker against a real standalone `redis-server` on a free
 * port, beyond the conformance suite (`redis.test.ts`): batched
 * subscriptions, key layout and expiries, routing (registry keys, the
 * broadcast and inbox channels), start and handler faults, and surviving a
 * `kill -9` of the server (with and without persistence).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BrokerHandlers, BrokerPublication, Route } from '../../src/brokers/broker.js';
import type { HistoryPolicy } from '../../src/brokers/history.js';
import { createBroker } from '../../src/brokers/index.js';
import { RedisBroker, type RedisBrokerOptions } from '../../src/brokers/redis/redis-broker.js';
import { freePort } from '../helpers/ports.js';
import { redisCommand, startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { sleep } from '../helpers/wait.js';

const LONG: HistoryPolicy = { size: 100, ttlMs: 60_000 };
const uid = (): string => randomBytes(4).toString('hex');
const ALL: Route = { to: 'all' };
const toNodes = (nodes: string[], registered = false): Route => ({ to: 'nodes', nodes, registered });

/** `redis-cli` for replies the tiny RESP client of the helper does not read (arrays): one line per element. */
function cli(port: number, ...args: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5_000 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout.split('\n').filter((l) => l !== ''));
    });
  });
}

/** Calls of `command` since the last CONFIG RESETSTAT. */
async function calls(port: number, command: string): Promise<number> {
  const stats = await redisCommand(port, ['INFO', 'commandstats']);
  const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(stats);
  return m ? Number(m[1]) : 0;
}

interface Started {
  broker: RedisBroker;
  pubs: BrokerPublication[];
  controls: string[];
  readyChanges: boolean[];
  errors: string[];
  got(channel: string): unknown[];
}

describe('redis broker (standalone)', () => {
  let redis: RedisProcess;
  const brokers: RedisBroker[] = [];

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });
  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
  });

  async function start(nodeId: string, options: RedisBrokerOptions = {}, url = redis.url): Promise<Started> {
    const errors: string[] = [];
    const broker = new RedisBroker(url, { onError: (err, where) => void errors.push(`${where}: ${err.message}`), ...options });
    brokers.push(broker);
    const rec = { pubs: [] as BrokerPublication[], controls: [] as string[], readyChanges: [] as boolean[] };
    const handlers: BrokerHandlers = {
      onPublication: (p) => void rec.pubs.push(p),
      onControl: (c) => void rec.controls.push(c),
      onReadyChange: (r) => void rec.readyChanges.push(r),
    };
    await broker.start(nodeId, handlers);
    return { broker, ...rec, errors, got: (c) => rec.pubs.filter((p) => p.channel === c).map((p) => p.data) };
  }

  describe('interest', () => {
    it('sends the subscribes and unsubscribes of one tick as one command each', async () => {
      const prefix = `t${uid()}`;
      const a = await start('a', { prefix });
      const b = await start('b', { prefix });
      const channels = Array.from({ length: 50 }, (_, i) => `room:${i}`);

      await redisCommand(redis.port, ['CONFIG', 'RESETSTAT']);
      await Promise.all(channels.map((c) => a.broker.subscribe(c)));
      expect(await calls(redis.port, 'subscribe')).toBe(1);
      expect(await cli(redis.port, 'PUBSUB', 'CHANNELS', `${prefix}:{*`)).toHaveLength(50);
      expect(await cli(redis.port, 'PUBSUB', 'NUMSUB', `${prefix}:{room:7}:p`)).toEqual([`${prefix}:{room:7}:p`, '1']);

      // every channel is live at once
      await Promise.all(channels.map((c, i) => b.broker.publish({ channel: c, data: i, ts: Date.now() }, null)));
      await vi.waitFor(() => expect(a.pubs).toHaveLength(50), { timeout: 5_000, interval: 20 });

      await redisCommand(redis.port, ['CONFIG', 'RESETSTAT']);
      await Promise.all(channels.map((c) => a.broker.unsubscribe(c)));
      expect(await calls(redis.port, 'unsubscribe')).toBe(1);
      expect(await cli(redis.port, 'PUBSUB', 'CHANNELS', `${prefix}:{*`)).toEqual([]);
    });

    it('lets the last call win when one tick subscribes and unsubscribes a channel', async () => {
      const prefix = `t${uid()}`;
      const a = await start('a', { prefix });
      await redisCommand(redis.port, ['CONFIG', 'RESETSTAT']);
      await Promise.all([a.broker.subscribe('room:x'), a.broker.unsubscribe('room:x')]);
      expect(await calls(redis.port, 'subscribe')).toBe(0);
      expect(await cli(redis.port, 'PUBSUB', 'CHANNELS', `${prefix}:{*`)).toEqual([]);

      await Promise.all([a.broker.unsubscribe('room:y'), a.broker.subscribe('room:y')]);
      expect(await cli(redis.port, 'PUBSUB', 'CHANNELS', `${prefix}:{*`)).toEqual([`${prefix}:{room:y}:p`]);

      // across ticks, with commands in flight: subscribe, unsubscribe, subscribe
      const p1 = a.broker.subscribe('room:z');
      await new Promise((r) => setImmediate(r));
      const p2 = a.broker.unsubscribe('room:z');
      await new Promise((r) => setImmediate(r));
      const p3 = a.broker.subscribe('room:z');
      await Promise.all([p1, p2, p3]);
      expect((await cli(redis.port, 'PUBSUB', 'CHANNELS', `${prefix}:{*`)).sort()).toEqual([`${prefix}:{room:y}:p`, `${prefix}:{room:z}:p`]);
      await a.broker.publish({ channel: 'room:z', data: 'z', ts: Date.now() }, null);
      await vi.waitFor(() => expect(a.got('room:z')).toEqual(['z']), { timeout: 5_000, interval: 20 });
    });
  });

  describe('storage', () => {
    it('keeps one channel under one hash tag, with expiries, and publishes with one script call', async () => {
      const prefix = `t${uid()}`;
      const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((n) => start(n, { prefix })));
      await Promise.all([a, b, c].map((n) => n!.broker.subscribe('news:1')));

      // the first run loads the script (EVALSHA answers NOSCRIPT, then EVAL); later runs are one EVALSHA
      await a!.broker.publish({ channel: 'warm:up', data: 0, ts: Date.now() }, { size: 1, ttlMs: 1 });
      await redisCommand(redis.port, ['CONFIG', 'RESETSTAT']);
      expect(await a!.broker.publish({ channel: 'news:1', data: 'x', ts: Date.now() }, { size: 10, ttlMs: 30_000 })).toMatchObject({ offset: 1 });
      expect(await calls(redis.port, 'evalsha')).toBe(1);
      expect(await calls(redis.port, 'eval')).toBe(0);
      for (const n of [a, b, c]) await vi.waitFor(() => expect(n!.got('news:1')).toEqual(['x']), { timeout: 5_000, interval: 20 });

      expect((await cli(redis.port, 'KEYS', `${prefix}:{news:1}*`)).sort()).toEqual([`${prefix}:{news:1}:h`, `${prefix}:{news:1}:m`]);
      // the TTLs are set for a sixteenth longer, and then only once per sixteenth of the TTL (see STORE in scripts.ts)
      const streamTtl = Number(await redisCommand(redis.port, ['PTTL', `${prefix}:{news:1}:h`]));
      expect(streamTtl).toBeGreaterThan(30_000);
      expect(streamTtl).toBeLessThanOrEqual(30_000 + 30_000 / 16);
      await a!.broker.publish({ channel: 'news:1', data: 'y', ts: Date.now() }, { size: 10, ttlMs: 30_000 });
      expect(await calls(redis.port, 'pexpire')).toBe(2);
      const metaTtl = Number(await redisCommand(redis.port, ['PTTL', `${prefix}:{news:1}:m`]));
      expect(metaTtl).toBeGreaterThan(23 * 3600_000);
      expect(await cli(redis.port, 'XRANGE', `${prefix}:{news:1}:h`, '-', '+')).toContain('1-0');

      // a read refreshes the numbering's expiry
      await redisCommand(redis.port, ['PEXPIRE', `${prefix}:{news:1}:m`, '60000']);
      await b!.broker.store.history('news:1', { limit: 0 }, { size: 10, ttlMs: 30_000 });
      expect(Number(await redisCommand(redis.port, ['PTTL', `${prefix}:{news:1}:m`]))).toBeGreaterThan(23 * 3600_000);

      // presence keys have no expiry: an entry lives until removed or its node is dropped
      await a!.broker.store.presenceAdd([{ channel: 'news:1', entry: { user: 'u', session: 's', node: 'a' } }]);
      expect(await redisCommand(redis.port, ['PTTL', `${prefix}:{news:1}:s`])).toBe('-1');
    });

    it('numbers, stores and publishes what is ready in the same moment with one script call, in order, each with its own key', async () => {
      const prefix = `t${uid()}`;
      const [a, b] = await Promise.all(['a', 'b'].map((n) => start(n, { prefix })));
      await b!.broker.subscribe('burst:1');
      const policy = { size: 100, ttlMs: 30_000 };
      await a!.broker.publish({ channel: 'burst:0', data: 0, ts: Date.now() }, policy);
      const once = { key: 'k-2', windowMs: 60_000 };
      await a!.broker.publish({ channel: 'burst:1', data: 'first k-2', ts: Date.now() }, policy, undefined, once);
      await redisCommand(redis.port, ['CONFIG', 'RESETSTAT']);
      const receipts = await Promise.all([
        ...Array.from({ length: 20 }, (_, i) => a!.broker.publish({ channel: 'burst:1', data: i, ts: Date.now() }, policy)),
        a!.broker.publish({ channel: 'burst:1', data: 'again k-2', ts: Date.now() }, policy, undefined, once),
        a!.broker.publish({ channel: 'burst:1', data: 'k-3', ts: Date.now() }, policy, undefined, { key: 'k-3', windowMs: 60_000 }),
        a!.broker.publish({ channel: 'burst:2', data: 'other channel', ts: Date.now() }, policy),
      ]);
      expect(await calls(redis.port, 'evalsha')).toBe(1);
      expect(receipts.slice(0, 20).map((r) => r.offset)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
      expect(receipts[20]).toMatchObject({ offset: 1, duplicate: true });
      expect(receipts[21]).toMatchObject({ offset: 22 });
      expect(receipts[21]).not.toHaveProperty('duplicate');
      expect(receipts[22]).toMatchObject({ offset: 1 });
      await vi.waitFor(() => expect(b!.got('burst:1')).toEqual(['first k-2', ...Array.from({ length: 20 }, (_, i) => i), 'k-3']), { timeout: 5_000, interval: 20 });
    });

    it('trims a history stream approximately but never answers more than the history size', async () => {
      const prefix = `t${uid()}`;
      const [a] = await Promise.all(['a'].map((n) => start(n, { prefix })));
      const policy = { size: 10, ttlMs: 30_000 };
      const xlen = async (): Promise<number> => Number(await redisCommand(redis.port, ['XLEN', `${prefix}:{trim:1}:h`]));
      let top = 0;
      let longest = 0;
      // On until the stream holds more than `size` (whole internal nodes are cut at a time), and not many more
      for (; top < 200 || ((await xlen()) <= 10 && top < 400); ) {
        await a!.broker.publish({ channel: 'trim:1', data: ++top, ts: Date.now() }, policy);
        longest = Math.max(longest, await xlen());
      }
      expect(await xlen()).toBeGreaterThan(10);
      expect(longest).toBeLessThanOrEqual(10 + 100);
      const newest = await a!.broker.store.history('trim:1', { limit: 100 }, policy);
      expect(newest).toMatchObject({ offset: top, earliest: top - 9 });
      expect(newest.messages.map((m) => m.data)).toEqual(Array.from({ length: 10 }, (_, i) => top - 9 + i));
      const since = await a!.broker.store.history('trim:1', { since: 100, limit: 100 }, policy);
      expect(since.earliest).toBe(top - 9);
      expect(since.messages.map((m) => m.offset)).toEqual(Array.from({ length: 10 }, (_, i) => top - 9 + i));
    });

    it('keeps the registry under the channel hash tag without expiry, indexed per node, and routes with one script call', async () => {
      const prefix = `t${uid()}`;
      const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((n) => start(n, { prefix })));
      const key = `${prefix}:{news:2}:n`;
      await b!.broker.registry.register(['news:2', 'news:3']);
      await c!.broker.registry.register(['news:2']);
      expect((await cli(redis.port, 'SMEMBERS', key)).sort()).toEqual(['b', 'c']);
      expect(await redisCommand(redis.port, ['PTTL', key])).toBe('-1');
      // each node lists its registrations under its own hash tag, and is named among the nodes with entries
      expect((await cli(redis.port, 'SMEMBERS', `${prefix}:node:{b}:r`)).sort()).toEqual(['news:2', 'news:3']);
      expect((await cli(redis.port, 'SMEMBERS', `${prefix}:nodes`)).sort()).toEqual(['b', 'c']);

      await b!.broker.registry.unregister(['news:2']);
      expect(await cli(redis.port, 'SMEMBERS', key)).toEqual(['c']);
      expect(await cli(redis.port, 'SMEMBERS', `${prefix}:{news:3}:n`)).toEqual(['b']);
      expect(await cli(redis.port, 'SMEMBERS', `${prefix}:node:{b}:r`)).toEqual(['news:3']);
      await b!.broker.registry.register(['news:2']);

      // a routed publish is one script call, history or not; a subscriber publish without history is a plain PUBLISH
      await a!.broker.publish({ channel: 'warm:up', data: 0, ts: Date.now() }, null, ALL);
      await redisCommand(redis.port, ['CONFIG', 'RESETSTAT']);
      expect(await a!.broker.publish({ channel: 'news:2', data: 'r', ts: Date.now() }, LONG, toNodes(['a', 'b'], true))).toMatchObject({ offset: 1 });
      expect(await a!.broker.publish({ channel: 'news:2', data: 'q', ts: Date.now() }, null, ALL)).toEqual({});
      expect(await calls(redis.port, 'evalsha')).toBe(2);
      expect(await calls(redis.port, 'eval')).toBe(0);
      for (const n of [a, b, c]) await vi.waitFor(() => expect(n!.got('news:2').at(-1)).toBe('q'), { timeout: 5_000, interval: 20 });
      expect(a!.got('news:2')).toEqual(['r', 'q']);
      expect(b!.got('news:2')).toEqual(['r', 'q']);
      expect(c!.got('news:2')).toEqual(['r', 'q']);
      // no history kept without a policy: the stored offset stays where it was
      expect((await a!.broker.store.history('news:2', { limit: 0 }, LONG)).offset).toBe(1);

      // a dropped node's registrations go, with its index and its name among the nodes with entries
      await a!.broker.store.dropNode('b');
      expect(await cli(redis.port, 'SMEMBERS', key)).toEqual(['c']);
      expect(await cli(redis.port, 'KEYS', `${prefix}:{news:3}*`)).toEqual([]);
      expect(await cli(redis.port, 'KEYS', `${prefix}:node:{b}*`)).toEqual([]);
      expect(await cli(redis.port, 'SMEMBERS', `${prefix}:nodes`)).toEqual(['c']);
      expect([...a!.errors, ...b!.errors, ...c!.errors]).toEqual([]);
    });

    it('gives a channel a new epoch when its numbering was lost, and skips damaged entries', async () => {
      const prefix = `t${uid()}`;
      const a = await start('a', { prefix });
      const first = await a.broker.publish({ channel: 'c:1', data: 1, ts: Date.now() }, LONG);
      await redisCommand(redis.port, ['DEL', `${prefix}:{c:1}:m`]);
      const page = await a.broker.store.history('c:1', { since: 0, limit: 10 }, LONG);
      expect(page.epoch).not.toBe(first.epoch);
      expect(page).toMatchObject({ offset: 0, earliest: 1, messages: [] });
      // the old entries went with the old numbering
      // (the read numbers nothing: the next publish starts the new epoch)
      const renumbered = await a.broker.publish({ channel: 'c:1', data: 2, ts: Date.now() }, LONG);
      expect(renumbered).toEqual({ offset: 1, epoch: expect.any(String) });
      expect(renumbered.epoch).not.toBe(first.epoch);

      await a.broker.publish({ channel: 'c:1', data: 3, ts: Date.now() }, LONG);
      await redisCommand(redis.port, ['XADD', `${prefix}:{c:1}:h`, '3-0', 'd', 'not json', 't', String(Date.now())]);
      await redisCommand(redis.port, ['HSET', `${prefix}:{c:1}:m`, 'o', '3']);
      const damaged = await a.broker.store.history('c:1', { since: 0, limit: 10 }, LONG);
      expect(damaged.offset).toBe(3);
      expect(damaged.messages.map((m) => m.data)).toEqual([2, 3]);
    });

    it('adds and removes presence with plain commands in one round trip, indexed by node', async () => {
      const prefix = `t${uid()}`;
      const a = await start('a', { prefix });
      const item = { channel: 'room:1', entry: { user: 'u', session: 's1', node: 'a' } };
      await redisCommand(redis.port, ['CONFIG', 'RESETSTAT']);
      await a.broker.store.presenceAdd([item]);
      // the node index, the entry, the node named among those with entries: no script
      expect([await calls(redis.port, 'sadd'), await calls(redis.port, 'hset'), await calls(redis.port, 'evalsha')]).toEqual([2, 1, 0]);
      expect(await redisCommand(redis.port, ['SCARD', `${prefix}:node:{a}:s`])).toBe('1');
      expect(await redisCommand(redis.port, ['SISMEMBER', `${prefix}:node:{a}:s`, 'room:1\ns1'])).toBe('1');
      expect(await cli(redis.port, 'HKEYS', `${prefix}:{room:1}:s`)).toEqual(['s1']);
      await a.broker.store.presenceRemove([item]);
      expect(await cli(redis.port, 'KEYS', `${prefix}:*:s`)).toEqual([]);
    });

    it('does no work while idle, however many entries it holds: nothing is refreshed', async () => {
      const prefix = `t${uid()}`;
      // no health check: its PING is the broker's, not the entries'
      const [a, b] = await Promise.all(['a', 'b'].map((n) => start(n, { prefix, healthCheckMs: 0 })));
      const rooms = Array.from({ length: 50 }, (_, i) => `room:${i}`);
      const N = 2_000;
      await a!.broker.store.presenceAdd(Array.from({ length: N }, (_, i) => ({ channel: rooms[i % rooms.length]!, entry: { user: `u${i}`, session: `s${i}`, node: 'a' } })));
      await b!.broker.registry.register(rooms);
      expect(await b!.broker.store.presence('room:7')).toHaveLength(N / rooms.length);

      await redisCommand(redis.port, ['CONFIG', 'RESETSTAT']);
      // Pause, not a wait: an idle window in which no command may reach Redis.
      await sleep(2_000);
      const stats = await redisCommand(redis.port, ['INFO', 'commandstats']);
      const used = [...stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map(([, name, n]) => `${name}=${n}`);
      expect(used.filter((u) => !/^(config|info)[|=]/.test(u))).toEqual([]);
      // and the entries are all still there
      expect(await a!.broker.store.presence('room:7')).toHaveLength(N / rooms.length);
    });
  });

  describe('lifecycle', () => {
    it('rejects start quickly when Redis cannot be reached, and leaves nothing running', async () => {
      const port = await freePort();
      const broker = new RedisBroker(`redis://127.0.0.1:${port}`, { startTimeoutMs: 500 });
      const t0 = Date.now();
      await expect(broker.start('x', { onPublication() {}, onControl() {}, onReadyChange() {} })).rejects.toThrow(
        /not reachable within 500 ms/,
      );
      expect(Date.now() - t0).toBeLessThan(2_000);
      expect(broker.ready).toBe(false);
      await expect(broker.publish({ channel: 'a', data: 1, ts: 0 }, null)).rejects.toThrow();
      await broker.close();
    });

    it('is picked by createBroker for redis:// URLs, with the prefix from the URL', async () => {
      const prefix = `t${uid()}`;
      const broker = await createBroker(`${redis.url}?prefix=${prefix}`);
      expect(broker.kind).toBe('redis');
      await broker.start('a', { onPublication() {}, onControl() {}, onReadyChange() {} });
      try {
        await broker.publish({ channel: 'k:1', data: 1, ts: 0 }, LONG);
        expect(await cli(redis.port, 'KEYS', `${prefix}:*`)).toHaveLength(2);
      } finally {
        await broker.close();
      }
    });

    it('reports and repairs a cut connection: the subscriber restores every subscription itself', async () => {
      const prefix = `t${uid()}`;
      const a = await start('a', { prefix });
      const b = await start('b', { prefix });
      const channels = ['x:1', 'x:2', 'x:3'];
      await Promise.all(channels.map((c) => a.broker.subscribe(c)));

      // the server forgets a killed client's subscriptions: only the broker can put them back
      await redisCommand(redis.port, ['CLIENT', 'KILL', 'TYPE', 'pubsub']);
      // Both brokers lost their subscriber: each is ready again once it has restored its subscriptions.
      await vi.waitFor(
        () => {
          expect(a.readyChanges).toEqual([false, true]);
          expect(b.readyChanges).toEqual([false, true]);
        },
        { timeout: 5_000, interval: 20 },
      );
      expect(a.broker.ready).toBe(true);
      expect((await cli(redis.port, 'PUBSUB', 'CHANNELS', `${prefix}:*`)).sort()).toEqual(
        [
          `${prefix}:ctl`,
          `${prefix}:ctl:a`,
          `${prefix}:ctl:b`,
          `${prefix}:all`,
          `${prefix}:in:a`,
          `${prefix}:in:b`,
          ...channels.map((c) => `${prefix}:{${c}}:p`),
        ].sort(),
      );
      await b.broker.publish({ channel: 'x:3', data: 'after', ts: Date.now() }, null);
      await b.broker.sendControl('a', 'ctl');
      await b.broker.publish({ channel: 'y:1', data: 'to all', ts: Date.now() }, null, ALL);
      await b.broker.publish({ channel: 'y:2', data: 'to a', ts: Date.now() }, null, toNodes(['a']));
      await vi.waitFor(() => expect(a.got('x:3')).toEqual(['after']), { timeout: 5_000, interval: 20 });
      await vi.waitFor(() => expect(a.controls).toEqual(['ctl']), { timeout: 5_000, interval: 20 });
      await vi.waitFor(() => expect([...a.got('y:1'), ...a.got('y:2')]).toEqual(['to all', 'to a']), { timeout: 5_000, interval: 20 });

      // the command connection alone
      await redisCommand(redis.port, ['CLIENT', 'KILL', 'TYPE', 'normal']);
      await vi.waitFor(() => expect(b.readyChanges).toEqual([false, true, false, true]), { timeout: 5_000, interval: 20 });
      expect(await b.broker.publish({ channel: 'x:1', data: 'again', ts: Date.now() }, LONG)).toMatchObject({ offset: 1 });
      await vi.waitFor(() => expect(a.got('x:1')).toEqual(['again']), { timeout: 5_000, interval: 20 });
    });

    it('survives a handler that throws', async () => {
      const broker = new RedisBroker(redis.url, { onError: () => undefined });
      brokers.push(broker);
      let n = 0;
      await broker.start(`n-${uid()}`, {
        onPublication: () => {
          n++;
          throw new Error('boom');
        },
        onControl() {},
        onReadyChange() {},
      });
      const c = `c:${uid()}`;
      await broker.subscribe(c);
      await broker.publish({ channel: c, data: 1, ts: 0 }, null);
      await broker.publish({ channel: c, data: 2, ts: 0 }, null);
      await vi.waitFor(() => expect(n).toBe(2), { timeout: 5_000, interval: 20 });
      expect(broker.errors).toBe(2);
      expect(broker.ready).toBe(true);
    });
  });
});

describe('redis broker across a redis-server crash', () => {
  const brokers: RedisBroker[] = [];
  let redis: RedisProcess | undefined;

  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
    await redis?.stop();
    redis = undefined;
  });

  async function start(url: string, nodeId: string): Promise<Started> {
    const errors: string[] = [];
    const broker = new RedisBroker(url, { onError: (err, where) => void errors.push(`${where}: ${err.message}`), healthCheckMs: 500 });
    brokers.push(broker);
    const rec = { pubs: [] as BrokerPublication[], controls: [] as string[], readyChanges: [] as boolean[] };
    await broker.start(nodeId, {
      onPublication: (p) => void rec.pubs.push(p),
      onControl: (c) => void rec.controls.push(c),
      onReadyChange: (r) => void rec.readyChanges.push(r),
    });
    return { broker, ...rec, errors, got: (c) => rec.pubs.filter((p) => p.channel === c).map((p) => p.data) };
  }

  it('goes unready, fails fast while down, and comes back with every subscription (new epoch without persistence)', async () => {
    redis = await startRedis();
    const a = await start(redis.url, 'a');
    const b = await start(redis.url, 'b');
    const channels = Array.from({ length: 30 }, (_, i) => `room:${i}`);
    await Promise.all(channels.map((c) => a.broker.subscribe(c)));
    await a.broker.subscribe('room:gone');
    const before = await b.broker.publish({ channel: 'room:0', data: 'before', ts: Date.now() }, LONG);
    await vi.waitFor(() => expect(a.got('room:0')).toEqual(['before']), { timeout: 5_000, interval: 20 });

    await redis.kill();
    await vi.waitFor(() => {
      expect(a.broker.ready).toBe(false);
      expect(b.broker.ready).toBe(false);
      expect(a.readyChanges).toEqual([false]);
      expect(b.readyChanges).toEqual([false]);
    }, { timeout: 5_000, interval: 20 });

    // fail fast: no queueing, no hanging
    const t0 = Date.now();
    await expect(b.broker.publish({ channel: 'room:0', data: 'lost', ts: Date.now() }, LONG)).rejects.toThrow();
    await expect(b.broker.publish({ channel: 'room:0', data: 'lost', ts: Date.now() }, null)).rejects.toThrow();
    await expect(b.broker.store.history('room:0', { limit: 1 }, LONG)).rejects.toThrow();
    await expect(b.broker.store.presence('room:0')).rejects.toThrow();
    await expect(b.broker.sendControl(null, 'x')).rejects.toThrow();
    await expect(a.broker.subscribe('room:new')).rejects.toThrow();
    // unsubscribing while down is fine: it is not restored
    await a.broker.unsubscribe('room:gone');
    expect(Date.now() - t0).toBeLessThan(500);
    // Pause, not a wait: while Redis stays down, readiness must not flap.
    await sleep(1_500);
    expect(a.readyChanges).toEqual([false]);

    await redis.restart();
    await vi.waitFor(() => {
      expect(a.broker.ready).toBe(true);
      expect(b.broker.ready).toBe(true);
      expect(a.readyChanges).toEqual([false, true]);
      expect(b.readyChanges).toEqual([false, true]);
    }, { timeout: 10_000, interval: 20 });

    // every subscription is back (the failed one too: it stays wanted until unsubscribed), and only those
    const held = await cli(redis.port, 'PUBSUB', 'CHANNELS', 'sb:{*');
    expect(held.sort()).toEqual([...channels, 'room:new'].map((c) => `sb:{${c}}:p`).sort());
    await Promise.all(channels.map((c) => b.broker.publish({ channel: c, data: `after ${c}`, ts: Date.now() }, null)));
    await vi.waitFor(() => expect(a.pubs.length).toBe(1 + channels.length), { timeout: 5_000, interval: 20 });
    expect(a.got('room:29')).toEqual(['after room:29']);

    // control channels are back too
    await b.broker.sendControl('a', 'hello a');
    await b.broker.sendControl(null, 'hello all');
    await vi.waitFor(() => expect(a.controls).toEqual(['hello a', 'hello all']), { timeout: 5_000, interval: 20 });
    await vi.waitFor(() => expect(b.controls).toEqual(['hello all']), { timeout: 5_000, interval: 20 });

    // the history was lost with the server: a new epoch says so
    const after = await b.broker.publish({ channel: 'room:0', data: 'after', ts: Date.now() }, LONG);
    expect(after.offset).toBe(1);
    expect(after.epoch).not.toBe(before.epoch);
    expect(a.errors.length).toBeGreaterThan(0);
  });

  it('delivers to all nodes and to inboxes again after a crash, without restarting the broker', async () => {
    redis = await startRedis();
    const a = await start(redis.url, 'a');
    const b = await start(redis.url, 'b');
    await a.broker.registry.register(['reg:1']);
    await b.broker.publish({ channel: 'all:1', data: 'before', ts: Date.now() }, LONG, ALL);
    await b.broker.publish({ channel: 'in:1', data: 'before', ts: Date.now() }, null, toNodes(['a']));
    await vi.waitFor(() => expect(a.pubs.map((p) => p.data)).toEqual(['before', 'before']), { timeout: 5_000, interval: 20 });

    await redis.kill();
    await vi.waitFor(() => expect(a.readyChanges).toEqual([false]), { timeout: 5_000, interval: 20 });
    await expect(b.broker.publish({ channel: 'all:1', data: 'lost', ts: Date.now() }, null, ALL)).rejects.toThrow();
    await expect(a.broker.registry.register(['reg:1'])).rejects.toThrow();
    await redis.restart();
    await vi.waitFor(() => {
      expect(a.readyChanges).toEqual([false, true]);
      expect(b.readyChanges).toEqual([false, true]);
    }, { timeout: 10_000, interval: 20 });

    // the broadcast and inbox channels are held again; the registry went with the data and is registered anew
    expect((await cli(redis.port, 'PUBSUB', 'CHANNELS', 'sb:*')).sort()).toEqual(
      ['sb:ctl', 'sb:ctl:a', 'sb:ctl:b', 'sb:all', 'sb:in:a', 'sb:in:b'].sort(),
    );
    expect(await b.broker.registry.registered('reg:1')).toEqual([]);
    await a.broker.registry.register(['reg:1']);
    await b.broker.publish({ channel: 'all:1', data: 'after', ts: Date.now() }, LONG, ALL);
    await b.broker.publish({ channel: 'in:1', data: 'after', ts: Date.now() }, null, toNodes(['a']));
    await b.broker.publish({ channel: 'reg:1', data: 'after', ts: Date.now() }, LONG, toNodes([], true));
    await vi.waitFor(() => expect(a.pubs.slice(2).map((p) => [p.channel, p.data])).toEqual([
      ['all:1', 'after'],
      ['in:1', 'after'],
      ['reg:1', 'after'],
    ]), { timeout: 5_000, interval: 20 });
    await vi.waitFor(() => expect(b.got('all:1')).toEqual(['before', 'after']), { timeout: 5_000, interval: 20 });
    expect(b.got('in:1')).toEqual([]);
    expect(b.got('reg:1')).toEqual([]);
  });

  it('keeps the epoch and numbering when the server restarts with its data (AOF)', async () => {
    redis = await startRedis({ persistence: true });
    const a = await start(redis.url, 'a');
    const first = await a.broker.publish({ channel: 'p:1', data: 1, ts: Date.now() }, LONG);
    await redis.kill();
    await vi.waitFor(() => expect(a.broker.ready).toBe(false), { timeout: 5_000, interval: 20 });
    await redis.restart();
    await vi.waitFor(() => expect(a.broker.ready).toBe(true), { timeout: 10_000, interval: 20 });
    expect(await a.broker.publish({ channel: 'p:1', data: 2, ts: Date.now() }, LONG)).toEqual({ offset: 2, epoch: first.epoch });
    const page = await a.broker.store.history('p:1', { since: 0, limit: 10 }, LONG);
    expect(page.messages.map((m) => m.data)).toEqual([1, 2]);
  });
});
