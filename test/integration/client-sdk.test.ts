/**
 * The client SDK against a real node (memory broker, in this process):
 * ordered exactly-once delivery between two users, recovery after a forced
 * disconnect with nothing lost and nothing duplicated, terminal closes,
 * token refresh through 401 refusals, and the heartbeat.
 */
import { SignJWT } from 'jose';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import {
  SwitchboardClient,
  type ClientOptions,
  type ConnectedEvent,
  type DisconnectedEvent,
  type Publication,
  type SubscribedEvent,
} from '../../src/client/index.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import type { NodeOptionsInput } from '../../src/server/options.js';
import { api } from '../helpers/api.js';
import { nextEvent, sleep } from '../helpers/wait.js';

const nodes: SwitchboardNode[] = [];
const clients: SwitchboardClient[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});
afterAll(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.close()));
});

async function node(opts: NodeOptionsInput = {}): Promise<SwitchboardNode> {
  const n = await startNode({ port: 0, host: '127.0.0.1', insecure: true, logLevel: 'silent', apiKeys: ['test-key'], ...opts });
  nodes.push(n);
  return n;
}

/** A client for `user` (via --insecure's `?user=`) that records what it sees. */
function client(n: SwitchboardNode, user: string | undefined, opts: Partial<ClientOptions> = {}) {
  const c = new SwitchboardClient({
    url: `ws://127.0.0.1:${n.port}/ws`,
    WebSocket,
    ...(user ? { params: { user } } : {}),
    minReconnectDelay: 20,
    maxReconnectDelay: 200,
    ...opts,
  });
  clients.push(c);
  const received: Publication[] = [];
  const connects: ConnectedEvent[] = [];
  const drops: DisconnectedEvent[] = [];
  c.on('message', (m) => received.push(m));
  c.on('connected', (e) => connects.push(e));
  c.on('disconnected', (e) => drops.push(e));
  const on = (channel: string): unknown[] => received.filter((m) => m.channel === channel).map((m) => m.data);
  return { c, received, connects, drops, on };
}

async function connected(c: SwitchboardClient): Promise<void> {
  if (c.state === 'connected') return;
  await nextEvent((listener) => c.once('connected', listener), 20_000, 'the client to connect');
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('client SDK against a real node', () => {
  it('two users exchange channel and personal messages in order, exactly once', async () => {
    // 200 frames at once would trip the default 100 frames/s per connection (close 4129).
    const n = await node({ limits: { maxMessagesPerSecond: 10_000 } });
    const alice = client(n, 'alice');
    const bob = client(n, 'bob');
    alice.c.connect();
    bob.c.connect();
    const aliceRoom = alice.c.subscribe('room.sdk');
    const bobRoom = bob.c.subscribe('room.sdk');
    await Promise.all([aliceRoom.ready(5000), bobRoom.ready(5000)]);
    expect(alice.connects[0]).toMatchObject({ user: 'alice', channel: 'user:alice', node: n.id });

    const total = 100;
    const results = await Promise.all(
      range(1, total).flatMap((i) => [alice.c.publish('room.sdk', { i }), alice.c.send('bob', { i })]),
    );
    // Publish results carry the history position.
    const roomOffsets = results.filter((_, k) => k % 2 === 0).map((r) => r.offset);
    expect([...roomOffsets].sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(range(1, total));

    // Wait for bob’s messages.
    await vi.waitUntil(() => bob.on('room.sdk').length === total && bob.on('user:bob').length === total, { timeout: 5000, interval: 10 });
    const iOf = (d: unknown): number => (d as { i: number }).i;
    expect(bob.on('room.sdk').map(iOf)).toEqual(range(1, total));
    expect(bob.on('user:bob').map(iOf)).toEqual(range(1, total));
    expect(bob.received.every((m) => m.from === 'alice')).toBe(true);
    // Bob replies; alice's personal stream gets it, and her room stream is complete too.
    await bob.c.send('alice', 'thanks');
    await vi.waitUntil(() => alice.on('user:alice').length === 1 && alice.on('room.sdk').length === total, { timeout: 5_000, interval: 10 });
    expect(alice.on('user:alice')).toEqual(['thanks']);
    expect(await alice.c.ping()).toBeGreaterThanOrEqual(0);
  });

  it('recovers channel and personal messages published during a forced disconnect, none lost or duplicated', async () => {
    const n = await node();
    // The reconnect waits ~300 ms, so the API publications below land while bob is away.
    const bob = client(n, 'bob2', { minReconnectDelay: 300, maxReconnectDelay: 1000, random: () => 0.99 });
    bob.c.connect();
    const sub = bob.c.subscribe('feed.sdk');
    const subscribed: SubscribedEvent[] = [];
    sub.on('subscribed', (e) => subscribed.push(e));
    await sub.ready(5000);

    for (const i of range(1, 5)) {
      await api(n.url(), 'POST', '/api/publish', { channel: 'feed.sdk', data: i });
      await api(n.url(), 'POST', '/api/send', { user: 'bob2', data: `p${i}` });
    }
    await vi.waitUntil(() => bob.on('feed.sdk').length === 5 && bob.on('user:bob2').length === 5, { timeout: 5_000, interval: 10 });

    const away = new Promise<void>((resolve) => bob.c.once('disconnected', () => resolve()));
    const kicked = await api(n.url(), 'POST', '/api/disconnect', { user: 'bob2', code: 4100, reason: 'test' });
    expect(kicked.body).toEqual({ sessions: 1 });
    await away;
    expect(bob.drops[0]).toMatchObject({ code: 4100, reconnect: true });
    expect(bob.c.state).toBe('connecting');
    for (const i of range(6, 10)) {
      await api(n.url(), 'POST', '/api/publish', { channel: 'feed.sdk', data: i });
      await api(n.url(), 'POST', '/api/send', { user: 'bob2', data: `p${i}` });
    }
    expect(bob.connects).toHaveLength(1); // still away while those were published

    await vi.waitUntil(() => bob.connects.length === 2, { timeout: 5000, interval: 10 });
    expect(bob.connects[1]).toMatchObject({ wasRecovering: true, recovered: true });
    await vi.waitUntil(() => subscribed.length === 2, { timeout: 5000, interval: 10 });
    expect(subscribed[1]).toMatchObject({ wasRecovering: true, recovered: true });

    // Live messages continue after the recovered ones.
    await api(n.url(), 'POST', '/api/publish', { channel: 'feed.sdk', data: 11 });
    await api(n.url(), 'POST', '/api/send', { user: 'bob2', data: 'p11' });
    await vi.waitUntil(() => bob.on('feed.sdk').length >= 11 && bob.on('user:bob2').length >= 11, { timeout: 5_000, interval: 10 });
    // Pause, not a wait: no duplicate may follow.
    await sleep(100);
    expect(bob.on('feed.sdk')).toEqual(range(1, 11));
    expect(bob.on('user:bob2')).toEqual(range(1, 11).map((i) => `p${i}`));
    expect(bob.received.filter((m) => m.channel === 'feed.sdk').map((m) => m.offset)).toEqual(range(1, 11));
  });

  it('loses and duplicates nothing while publications race with repeated forced reconnects', async () => {
    const n = await node();
    const carol = client(n, 'carol', { minReconnectDelay: 5, maxReconnectDelay: 50 });
    carol.c.connect();
    await carol.c.subscribe('race.sdk').ready(5000);
    const total = 150;
    const publishing = (async () => {
      for (const i of range(1, total)) {
        await api(n.url(), 'POST', '/api/publish', { channel: 'race.sdk', data: i });
        if (i % 3 === 0) await api(n.url(), 'POST', '/api/send', { user: 'carol', data: i });
      }
    })();
    let kicks = 0;
    while (kicks < 4) {
      // The kicker's pace: a kick every 40 ms at most while messages are published.
      await sleep(40);
      if (carol.c.state !== 'connected') continue;
      await api(n.url(), 'POST', '/api/disconnect', { user: 'carol', code: 4102 });
      kicks++;
    }
    await publishing;
    await vi.waitUntil(() => carol.on('race.sdk').length >= total && carol.on('user:carol').length >= total / 3, { timeout: 10_000, interval: 10 });
    // Pause, not a wait: no duplicate may follow.
    await sleep(100);
    expect(carol.drops.length).toBeGreaterThanOrEqual(4);
    expect(carol.on('race.sdk')).toEqual(range(1, total));
    expect(carol.on('user:carol')).toEqual(range(1, total).filter((i) => i % 3 === 0));
  });

  it('stops on a terminal disconnect from the server API (4000)', async () => {
    const n = await node();
    const dan = client(n, 'dan');
    dan.c.connect();
    await connected(dan.c);
    await api(n.url(), 'POST', '/api/disconnect', { user: 'dan' });
    await vi.waitUntil(() => dan.c.state === 'disconnected', { timeout: 5_000, interval: 10 });
    expect(dan.drops).toEqual([expect.objectContaining({ code: 4000, reconnect: false })]);
    // Pause, not a wait: no reconnect may follow reconnect: false.
    await sleep(200);
    expect(dan.connects).toHaveLength(1);
    await expect(dan.c.publish('room', 1)).rejects.toMatchObject({ code: 'disconnected' });
  });

  it('keeps retrying through 401 refusals, asking getToken each time, until a valid token comes', async () => {
    const secret = 'client-sdk-test-secret-0123456789';
    const n = await node({ insecure: false, secret });
    const sign = (sub: string) =>
      new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    let calls = 0;
    const erin = client(n, undefined, {
      // The query, where a bad token is a 401 before the upgrade (retried); in a first frame it would close with 4001.
      tokenIn: 'query',
      minReconnectDelay: 5,
      maxReconnectDelay: 20,
      getToken: async () => (++calls <= 3 ? 'not-a-valid-token' : sign('erin')),
    });
    erin.c.connect();
    await connected(erin.c);
    expect(calls).toBe(4);
    expect(erin.drops.map((d) => d.code)).toEqual([1006, 1006, 1006]);
    expect(erin.connects[0]).toMatchObject({ user: 'erin', channel: 'user:erin' });
  });

  it('sends its token in the first frame by default: connected, and a refused one closes with 4001 and stays down', async () => {
    const secret = 'client-sdk-test-secret-0123456789';
    const n = await node({ insecure: false, secret });
    const sign = (sub: string) =>
      new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    const gil = client(n, undefined, { getToken: () => sign('gil') });
    gil.c.connect();
    await connected(gil.c);
    expect(gil.connects[0]).toMatchObject({ user: 'gil', channel: 'user:gil' });
    const bad = client(n, undefined, { token: 'not-a-valid-token' });
    bad.c.connect();
    await vi.waitUntil(() => bad.drops.length > 0, { timeout: 5_000, interval: 10 });
    expect(bad.drops[0]).toMatchObject({ code: 4001, reconnect: false });
    expect(bad.c.state).toBe('disconnected');
  });

  it('answers server pings, so a quiet connection stays up', async () => {
    const n = await node({ ping: 1, pongTimeout: 1 });
    const fay = client(n, 'fay', { heartbeatGrace: 1000 });
    fay.c.connect();
    await connected(fay.c);
    expect(fay.connects[0]?.ping).toBe(1);
    // Pause, not a wait: several ping intervals pass; the connection must survive them.
    await sleep(3500);
    expect(fay.drops).toEqual([]);
    expect(fay.c.state).toBe('connected');
  });
});
