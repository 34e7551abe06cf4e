/**
 * Membership and cluster requests, above the brokers, over real in-process
 * brokers on one MemoryBus.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { Cluster, type ClusterHooks } from '../../src/cluster/cluster.js';
import type { ClusterRequest, NodeInfo } from '../../src/cluster/messages.js';
import { sleep } from '../helpers/wait.js';

const log = pino({ level: 'silent' });
const started: Array<{ cluster: Cluster; broker: MemoryBroker }> = [];

function info(id: string): NodeInfo {
  return { id, address: `http://${id}`, url: `ws://${id}/ws`, routing: 'interest', connections: 0, subscriptions: 0, uptime: 0, ready: true, draining: false };
}

async function member(
  bus: MemoryBus,
  id: string,
  serve: (r: ClusterRequest) => Promise<unknown> = async () => id,
  hooks: ClusterHooks = {},
): Promise<Cluster> {
  const broker = new MemoryBroker(bus);
  const cluster = new Cluster(id, broker, { heartbeatMs: 50, deadAfterBeats: 3 }, () => info(id), serve, log, hooks);
  await broker.start(id, { onPublication: () => undefined, onReadyChange: () => undefined, onControl: (p) => cluster.receive(p) });
  cluster.start();
  started.push({ cluster, broker });
  return cluster;
}

const ids = (c: Cluster) => c.nodes().map((n) => n.id).sort();
const request: ClusterRequest = { kind: 'disconnect', user: 'u', code: 4000, reason: 'r' };

afterEach(async () => {
  for (const { cluster, broker } of started.splice(0)) {
    cluster.stop();
    await broker.close();
  }
});

describe('membership', () => {
  it('nodes learn of each other from heartbeats', async () => {
    const bus = new MemoryBus();
    const a = await member(bus, 'a');
    const b = await member(bus, 'b');
    const c = await member(bus, 'c');
    await vi.waitUntil(() => [a, b, c].every((x) => x.nodes().length === 3), { timeout: 5_000, interval: 10 });
    for (const x of [a, b, c]) expect(ids(x)).toEqual(['a', 'b', 'c']);
    expect(a.nodes()[0]?.id).toBe('a');
  });

  it('a newcomer knows every member at once, not only after their next beat', async () => {
    const bus = new MemoryBus();
    const broker = new MemoryBroker(bus);
    const slow = new Cluster('old', broker, { heartbeatMs: 60_000, deadAfterBeats: 3 }, () => info('old'), async () => 0, log);
    await broker.start('old', { onPublication: () => undefined, onReadyChange: () => undefined, onControl: (p) => slow.receive(p) });
    slow.start();
    started.push({ cluster: slow, broker });
    const fresh = await member(bus, 'new');
    // Old beats once a minute: only the newcomer's own join can make it known in time.
    await vi.waitUntil(() => fresh.nodes().length === 2, { timeout: 5_000, interval: 10 });
    expect(ids(fresh)).toEqual(['new', 'old']);
  });

  it('a node that leaves is gone at once; one that stops beating is declared dead after the missed beats', async () => {
    const bus = new MemoryBus();
    const a = await member(bus, 'a');
    const b = await member(bus, 'b');
    const c = await member(bus, 'c');
    await vi.waitUntil(() => [a, b, c].every((x) => x.nodes().length === 3), { timeout: 5_000, interval: 10 });
    await b.leave();
    expect(ids(a)).toEqual(['a', 'c']);
    c.stop(); // a crash: no leave, no more beats
    // Pause, not a wait: a node is not dead before its beats are missed (3 x 50 ms).
    await sleep(60);
    expect(a.isAlive('c')).toBe(true);
    await vi.waitUntil(() => !a.isAlive('c'), { timeout: 5_000, interval: 10 });
    expect(a.isAlive('c')).toBe(false);
    expect(ids(a)).toEqual(['a']);
  });

  it("each survivor drops the entries of a node that leaves or dies, and tells one that beats again to put its own back once that drop is done", async () => {
    const bus = new MemoryBus();
    const gone: Record<string, string[]> = { a: [], c: [] };
    const drops: Record<string, Array<() => void>> = { a: [], c: [] };
    /** A drop that finishes when the test says so. */
    const onGone = (self: string) => (node: string) => {
      gone[self]!.push(node);
      return new Promise<void>((resolve) => drops[self]!.push(resolve));
    };
    let swept = 0;
    const a = await member(bus, 'a', undefined, { onGone: onGone('a') });
    const b = await member(bus, 'b', undefined, { onSwept: () => void swept++ });
    const c = await member(bus, 'c', undefined, { onGone: onGone('c') });
    const d = await member(bus, 'd');
    await vi.waitUntil(() => [a, b, c, d].every((x) => x.nodes().length === 4), { timeout: 5_000, interval: 10 });

    await d.leave();
    expect(gone).toEqual({ a: ['d'], c: ['d'] });
    b.stop(); // it stalls: no more beats, but it is not gone
    await vi.waitUntil(() => !a.isAlive('b') && !c.isAlive('b'), { timeout: 5_000, interval: 10 });
    expect(gone).toEqual({ a: ['d', 'b'], c: ['d', 'b'] });

    b.start();
    await vi.waitUntil(() => a.isAlive('b') && c.isAlive('b'), { timeout: 5_000, interval: 10 });
    // Pause, not a wait: while the survivors' drops are under way, b must not be told to put its entries back.
    await sleep(100);
    expect(swept).toBe(0);
    drops.a![1]!();
    await vi.waitUntil(() => swept === 1, { timeout: 5_000, interval: 10 });
    drops.c![1]!();
    await vi.waitUntil(() => swept === 2, { timeout: 5_000, interval: 10 });
    // A node that returns is dropped again only when it goes again.
    expect(gone).toEqual({ a: ['d', 'b'], c: ['d', 'b'] });
  });
});

describe('requests to every node', () => {
  it('collects every live node’s answer, this node’s included', async () => {
    const bus = new MemoryBus();
    const a = await member(bus, 'a', async () => 1);
    await member(bus, 'b', async () => 2);
    await member(bus, 'c', async () => 3);
    await vi.waitUntil(() => a.nodes().length === 3, { timeout: 5_000, interval: 10 });
    const outcomes = await a.requestAll(request, 2000);
    expect(outcomes.map((o) => [o.node, o.result]).sort()).toEqual([
      ['a', 1],
      ['b', 2],
      ['c', 3],
    ]);
  });

  it('reports errors per node and does not wait for a node that never answers beyond the timeout', async () => {
    const bus = new MemoryBus();
    const a = await member(bus, 'a');
    await member(bus, 'b', async () => {
      throw new Error('boom');
    });
    await member(bus, 'slow', () => new Promise(() => undefined));
    await vi.waitUntil(() => a.nodes().length === 3, { timeout: 5_000, interval: 10 });
    const t0 = Date.now();
    const outcomes = await a.requestAll(request, 300);
    expect(Date.now() - t0).toBeLessThan(1000);
    const byNode = Object.fromEntries(outcomes.map((o) => [o.node, o]));
    expect(byNode.a).toEqual({ node: 'a', result: 'a' });
    expect(byNode.b?.error?.code).toBe('internal');
    expect(byNode.slow?.error?.code).toBe('unavailable');
  });

  it('stops waiting for a node as soon as it is declared dead, well before the timeout', async () => {
    const bus = new MemoryBus();
    const a = await member(bus, 'a');
    const b = await member(bus, 'b', () => new Promise(() => undefined));
    await vi.waitUntil(() => a.nodes().length === 2, { timeout: 5_000, interval: 10 });
    b.stop();
    const t0 = Date.now();
    const outcomes = await a.requestAll(request, 10_000);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(outcomes.find((o) => o.node === 'b')?.error?.code).toBe('unavailable');
  });

  it('ignores malformed control messages', async () => {
    const bus = new MemoryBus();
    const a = await member(bus, 'a');
    for (const p of ['not json', '{}', '{"type":"heartbeat"}', '{"type":"nope","from":"x"}']) a.receive(p);
    expect(ids(a)).toEqual(['a']);
  });
});
