/**
 * The Redis broker on a real 3-master Redis Cluster (no replicas), beyond
 * the conformance suite (`redis-cluster.test.ts`): sharded subscriptions
 * held on the master of each channel's slot, keys in that slot, a master
 * crash and restart, and publications routed to every node or to inboxes
 * (classic pub/sub, carried by the cluster to every cluster node).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BrokerPublication, PresenceEntry, Route } from '../../src/brokers/broker.js';
import type { HistoryPolicy } from '../../src/brokers/history.js';
import { createBroker } from '../../src/brokers/index.js';
import { RedisBroker } from '../../src/brokers/redis/redis-broker.js';
import { keySlot } from '../../src/brokers/redis/slot.js';
import { redisCommand, startRedisCluster, type RedisCluster } from '../helpers/redis-server.js';

const uid = (): string => randomBytes(4).toString('hex');
const LONG: HistoryPolicy = { size: 10, ttlMs: 60_000 };
const ALL: Route = { to: 'all' };
const toNodes = (nodes: string[], registered = false): Route => ({ to: 'nodes', nodes, registered });

function cli(port: number, ...args: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5_000 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout.split('\n').filter((l) => l !== ''));
    });
  });
}

let cluster: RedisCluster;

/** The port of the master serving `key`: the others answer MOVED. */
async function ownerOf(key: string): Promise<number> {
  const owners: number[] = [];
  for (const port of cluster.ports) {
    try {
      await redisCommand(port, ['EXISTS', key]);
      owners.push(port);
    } catch (err) {
      expect(String(err)).toMatch(/MOVED/);
    }
  }
  expect(owners).toHaveLength(1);
  return owners[0]!;
}

interface Started {
  broker: RedisBroker;
  pubs: BrokerPublication[];
  controls: string[];
  readyChanges: boolean[];
  faults: string[];
}

describe('redis broker (cluster): sharding', () => {
  const brokers: RedisBroker[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });
  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
  });

  async function start(nodeId: string, prefix: string): Promise<Started> {
    const faults: string[] = [];
    const broker = new RedisBroker(cluster.url, { prefix, healthCheckMs: 500, onError: (err, where) => void faults.push(`${where}: ${err.message}`) });
    brokers.push(broker);
    const rec = { pubs: [] as BrokerPublication[], controls: [] as string[], readyChanges: [] as boolean[] };
    await broker.start(nodeId, {
      onPublication: (p) => void rec.pubs.push(p),
      onControl: (c) => void rec.controls.push(c),
      onReadyChange: (r) => void rec.readyChanges.push(r),
    });
    return { broker, ...rec, faults };
  }

  it('computes the same slots as Redis', async () => {
    for (const key of ['foo', 'sb:{chat:room-1}:p', 'sb:{user:42}:m', '{}x', 'a{b}c', 'ünï{cøde}', 'sb:ctl']) {
      expect(String(keySlot(key)), key).toBe(await redisCommand(cluster.ports[0]!, ['CLUSTER', 'KEYSLOT', key]));
    }
  });

  it('holds each channel on the master of its slot with sharded subscriptions, next to its keys', async () => {
    const prefix = `t${uid()}`;
    const a = await start('a', prefix);
    const b = await start('b', prefix);
    const channels = Array.from({ length: 40 }, (_, i) => `room:${i}`);
    await Promise.all(channels.map((c) => a.broker.subscribe(c)));

    const held = await Promise.all(cluster.ports.map((p) => cli(p, 'PUBSUB', 'SHARDCHANNELS', `${prefix}:{*`)));
    expect(held.flat().sort()).toEqual(channels.map((c) => `${prefix}:{${c}}:p`).sort());
    // spread over the masters, each on the master that serves the channel's keys
    expect(held.filter((h) => h.length > 0).length).toBeGreaterThan(1);
    for (const [i, port] of cluster.ports.entries()) {
      for (const name of held[i]!) expect(await ownerOf(name.replace(/:p$/, ':m'))).toBe(port);
    }
    // on classic pub/sub, which a cluster broadcasts to every node, only the broadcast and inbox channels, on the seed node
    expect((await cli(cluster.ports[0]!, 'PUBSUB', 'CHANNELS', `${prefix}*`)).sort()).toEqual(
      [`${prefix}:all`, `${prefix}:in:a`, `${prefix}:in:b`, `${prefix}:probe:a`, `${prefix}:probe:b`].sort(),
    );
    for (const p of cluster.ports.slice(1)) expect(await cli(p, 'PUBSUB', 'CHANNELS', `${prefix}*`)).toEqual([]);

    await Promise.all(channels.map((c, i) => b.broker.publish({ channel: c, data: i, ts: Date.now() }, { size: 10, ttlMs: 60_000 })));
    await vi.waitFor(() => expect(a.pubs).toHaveLength(40), { timeout: 5_000, interval: 20 });
    for (const p of a.pubs) expect(p).toMatchObject({ offset: 1 });
    for (const c of channels.slice(0, 5)) {
      const port = await ownerOf(`${prefix}:{${c}}:m`);
      expect(await redisCommand(port, ['EXISTS', `${prefix}:{${c}}:h`])).toBe('1');
    }

    await Promise.all(channels.map((c) => a.broker.unsubscribe(c)));
    const after = await Promise.all(cluster.ports.map((p) => cli(p, 'PUBSUB', 'SHARDCHANNELS', `${prefix}:{*`)));
    expect(after.flat()).toEqual([]);
    expect([...a.faults, ...b.faults]).toEqual([]);
  });

  it('after a master crashes and restarts, is ready again only with its shard subscriptions restored', async () => {
    const prefix = `t${uid()}`;
    const a = await start('a', prefix);
    const b = await start('b', prefix);
    const channels = Array.from({ length: 12 }, (_, i) => `room:${i}`);
    await Promise.all(channels.map((c) => a.broker.subscribe(c)));
    const victim = await ownerOf(`${prefix}:{room:0}:m`);
    const node = cluster.nodes[cluster.ports.indexOf(victim)]!;

    await node.kill();
    await vi.waitFor(() => expect(a.readyChanges).toEqual([false]), { timeout: 5_000, interval: 20 });
    await expect(b.broker.publish({ channel: 'room:0', data: 'lost', ts: Date.now() }, null)).rejects.toThrow();

    await node.restart();
    await vi.waitFor(() => expect(a.readyChanges).toEqual([false, true]), { timeout: 15_000, interval: 20 });
    expect(a.broker.ready).toBe(true);
    const held = await cli(victim, 'PUBSUB', 'SHARDCHANNELS', `${prefix}:{*`);
    expect(held).toContain(`${prefix}:{room:0}:p`);
    // the cluster may need a moment to agree the node is back before it takes writes
    await vi.waitFor(() => b.broker.publish({ channel: 'room:0', data: 'back', ts: Date.now() }, { size: 10, ttlMs: 60_000 }), { timeout: 10_000, interval: 200 });
    await vi.waitFor(() => expect(a.pubs.map((p) => p.data)).toContain('back'), { timeout: 5_000, interval: 20 });
    // routed publications from the restarted master reach every node again
    await b.broker.publish({ channel: 'room:0', data: 'routed back', ts: Date.now() }, null, { to: 'all' });
    await vi.waitFor(() => expect(a.pubs.map((p) => p.data)).toContain('routed back'), { timeout: 5_000, interval: 20 });
    await a.broker.sendControl(null, 'still there');
    await vi.waitFor(() => expect(b.controls).toEqual(['still there']), { timeout: 5_000, interval: 20 });
    expect(a.faults.length).toBeGreaterThan(0);
  }, 40_000);

  it('follows a slot that migrates to another master: the subscription moves with it', async () => {
    const prefix = `t${uid()}`;
    const a = await start('a', prefix);
    const b = await start('b', prefix);
    const channel = 'room:moving';
    await a.broker.subscribe(channel);
    await b.broker.publish({ channel, data: 'before', ts: Date.now() }, { size: 10, ttlMs: 60_000 });
    await vi.waitFor(() => expect(a.pubs.map((p) => p.data)).toEqual(['before']), { timeout: 5_000, interval: 20 });

    const slot = String(keySlot(`${prefix}:{${channel}}:p`));
    const source = await ownerOf(`${prefix}:{${channel}}:m`);
    const target = cluster.ports.find((p) => p !== source)!;
    const [sourceId, targetId] = await Promise.all([source, target].map((p) => redisCommand(p, ['CLUSTER', 'MYID'])));
    await redisCommand(target, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId!]);
    await redisCommand(source, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId!]);
    const keys = await cli(source, 'CLUSTER', 'GETKEYSINSLOT', slot, '100');
    expect(keys.length).toBeGreaterThan(0);
    await cli(source, 'MIGRATE', '127.0.0.1', String(target), '', '0', '5000', 'KEYS', ...keys);
    for (const p of cluster.ports) await redisCommand(p, ['CLUSTER', 'SETSLOT', slot, 'NODE', targetId!]);

    await vi.waitFor(async () => {
      expect(await cli(target, 'PUBSUB', 'SHARDCHANNELS', `${prefix}:{*`)).toEqual([`${prefix}:{${channel}}:p`]);
      expect(await cli(source, 'PUBSUB', 'SHARDCHANNELS', `${prefix}:{*`)).toEqual([]);
    }, { timeout: 15_000, interval: 100 });
    await vi.waitFor(() => expect(a.broker.ready).toBe(true), { timeout: 10_000, interval: 20 });
    await vi.waitFor(() => b.broker.publish({ channel, data: 'after', ts: Date.now() }, { size: 10, ttlMs: 60_000 }), { timeout: 10_000, interval: 200 });
    await vi.waitFor(() => expect(a.pubs.map((p) => p.data)).toEqual(['before', 'after']), { timeout: 5_000, interval: 20 });
    expect(a.pubs.map((p) => p.offset)).toEqual([1, 2]);
    // the move is reported as a readiness dip, so that the node catches up on what it may have missed meanwhile
    await vi.waitFor(() => {
      expect(a.readyChanges).toContain(false);
      expect(a.readyChanges.at(-1)).toBe(true);
      expect(a.broker.ready).toBe(true);
    }, { timeout: 10_000, interval: 20 });
  }, 40_000);

  /** One channel whose slot is on each master. */
  async function channelPerMaster(prefix: string): Promise<string[]> {
    const byMaster = new Map<number, string>();
    for (let i = 0; byMaster.size < cluster.ports.length && i < 200; i++) {
      const port = await ownerOf(`${prefix}:{room:${i}}:m`);
      if (!byMaster.has(port)) byMaster.set(port, `room:${i}`);
    }
    expect(byMaster.size).toBe(cluster.ports.length);
    return [...byMaster.values()];
  }

  it('routes to every node and to inboxes from channels on every master, in offset order', async () => {
    const prefix = `t${uid()}`;
    const a = await start('a', prefix);
    const b = await start('b', prefix);
    const channels = await channelPerMaster(prefix);
    await b.broker.registry.register(channels);
    expect(await a.broker.registry.registered(channels[2]!)).toEqual(['b']);

    await Promise.all(
      channels.map(async (channel) => {
        const pub = (data: string, history: HistoryPolicy | null, route: Route, from = a): Promise<unknown> =>
          from.broker.publish({ channel, data, ts: Date.now() }, history, route);
        await pub('all-1', LONG, ALL);
        await pub('reg-2', LONG, toNodes([], true));
        await pub('a-3', null, toNodes(['a']), b);
        await pub('all-4', LONG, ALL, b);
      }),
    );
    for (const channel of channels) {
      const mine = (n: Started): unknown[] => n.pubs.filter((p) => p.channel === channel).map((p) => [p.data, p.offset]);
      await vi.waitFor(() => expect(mine(a)).toEqual([['all-1', 1], ['a-3', undefined], ['all-4', 3]]), { timeout: 5_000, interval: 20 });
      await vi.waitFor(() => expect(mine(b)).toEqual([['all-1', 1], ['reg-2', 2], ['all-4', 3]]), { timeout: 5_000, interval: 20 });
    }
    expect([...a.faults, ...b.faults]).toEqual([]);
  });

  it("drops a node's presence and registry entries from every master at once, that node's only", async () => {
    const prefix = `t${uid()}`;
    const a = await start('a', prefix);
    const b = await start('b', prefix);
    const channels = [...(await channelPerMaster(prefix)), ...Array.from({ length: 30 }, (_, i) => `lobby:${i}`)];
    const entry = (node: string, i: number): PresenceEntry => ({ user: `u${i}`, session: `${node}-${i}`, node });
    // a holds 40 sessions on each channel (more than one step of its index walk), b one
    await a.broker.store.presenceAdd(channels.flatMap((channel) => Array.from({ length: 40 }, (_, i) => ({ channel, entry: entry('a', i) }))));
    await b.broker.store.presenceAdd(channels.map((channel) => ({ channel, entry: entry('b', 0) })));
    await a.broker.registry.register(channels);
    await b.broker.registry.register(channels.slice(0, 3));
    // a's index lives in a's slot, the entries in their channels' slots, on every master
    const indexAt = await ownerOf(`${prefix}:node:{a}:s`);
    expect(await ownerOf(`${prefix}:node:{a}:r`)).toBe(indexAt);
    expect(String(keySlot(`${prefix}:node:{a}:s`))).toBe(await redisCommand(indexAt, ['CLUSTER', 'KEYSLOT', 'a']));
    expect(await redisCommand(indexAt, ['SCARD', `${prefix}:node:{a}:s`])).toBe(String(channels.length * 40));
    expect((await b.broker.store.nodesWithEntries()).sort()).toEqual(['a', 'b']);

    await b.broker.store.dropNode('a');
    for (const channel of channels) expect(await a.broker.store.presence(channel)).toEqual([entry('b', 0)]);
    for (const channel of channels.slice(0, 3)) expect(await a.broker.registry.registered(channel)).toEqual(['b']);
    for (const channel of channels.slice(3)) expect(await a.broker.registry.registered(channel)).toEqual([]);
    expect(await a.broker.store.nodesWithEntries()).toEqual(['b']);
    // nothing of a's is left on any master
    for (const port of cluster.ports) expect(await cli(port, 'KEYS', `${prefix}:node:{a}*`)).toEqual([]);
    for (const port of cluster.ports) {
      for (const key of await cli(port, 'KEYS', `${prefix}:{*}:s`)) expect(await cli(port, 'HKEYS', key)).toEqual(['b-0']);
    }
    expect([...a.faults, ...b.faults]).toEqual([]);
  });

  it('reports the inbox subscriber down and up, and routes to it again once it is back', async () => {
    const prefix = `t${uid()}`;
    const a = await start('a', prefix);
    const b = await start('b', prefix);
    const seed = cluster.ports[0]!;
    const clients = await redisCommand(seed, ['CLIENT', 'LIST', 'TYPE', 'pubsub']);
    const ids = clients
      .split('\n')
      .filter((line) => / name=switchboard:a:in /.test(line))
      .map((line) => /^id=(\d+) /.exec(line)?.[1]);
    expect(ids).toHaveLength(1);

    await redisCommand(seed, ['CLIENT', 'KILL', 'ID', ids[0]!]);
    await vi.waitFor(() => expect(a.readyChanges).toEqual([false, true]), { timeout: 5_000, interval: 20 });
    expect(a.broker.ready).toBe(true);
    expect(b.readyChanges).toEqual([]);
    expect(await cli(seed, 'PUBSUB', 'NUMSUB', `${prefix}:in:a`, `${prefix}:all`)).toEqual([`${prefix}:in:a`, '1', `${prefix}:all`, '2']);

    const [channel] = await channelPerMaster(prefix);
    await b.broker.publish({ channel: channel!, data: 'all', ts: Date.now() }, null, ALL);
    await b.broker.publish({ channel: channel!, data: 'to-a', ts: Date.now() }, null, toNodes(['a']));
    await vi.waitFor(() => expect(a.pubs.map((p) => p.data)).toEqual(['all', 'to-a']), { timeout: 5_000, interval: 20 });
  });

  it('after the seed master crashes and restarts, routes to every node and to inboxes again', async () => {
    const prefix = `t${uid()}`;
    const a = await start('a', prefix);
    const b = await start('b', prefix);
    const channels = await channelPerMaster(prefix);
    await b.broker.publish({ channel: channels[1]!, data: 'before', ts: Date.now() }, null, ALL);
    await vi.waitFor(() => expect(a.pubs.map((p) => p.data)).toEqual(['before']), { timeout: 5_000, interval: 20 });

    const seed = cluster.nodes[0]!;
    await seed.kill();
    await vi.waitFor(() => expect(a.readyChanges).toEqual([false]), { timeout: 5_000, interval: 20 });
    await seed.restart();
    await vi.waitFor(() => {
      expect(a.readyChanges).toEqual([false, true]);
      expect(b.readyChanges).toEqual([false, true]);
    }, { timeout: 15_000, interval: 20 });
    // Ready again means every master reaches the restarted node's subscribers again (cluster bus links
    // are back), so what is accepted from now on arrives, whichever master publishes it. The cluster
    // itself may need a moment more before it takes writes.
    for (const channel of channels) {
      await vi.waitFor(() => b.broker.publish({ channel, data: 'all', ts: Date.now() }, LONG, ALL), { timeout: 10_000, interval: 100 });
      await b.broker.publish({ channel, data: 'to-a', ts: Date.now() }, null, toNodes(['a']));
    }
    for (const channel of channels) {
      const mine = (n: Started): unknown[] => n.pubs.filter((p) => p.channel === channel).map((p) => p.data);
      await vi.waitFor(() => expect(mine(a)).toEqual(channel === channels[1] ? ['before', 'all', 'to-a'] : ['all', 'to-a']), { timeout: 5_000, interval: 20 });
      await vi.waitFor(() => expect(mine(b)).toEqual(channel === channels[1] ? ['before', 'all'] : ['all']), { timeout: 5_000, interval: 20 });
    }
  }, 40_000);

  it('is picked by createBroker for redis+cluster:// URLs', async () => {
    expect((await createBroker(cluster.url)).kind).toBe('redis-cluster');
  });
});
