/**
 * Issue 19, findings 1, 6 and 7, over real sockets: reads create no broker
 * state, client writes are bounded per minute (the storage flood of one
 * connection stays small, in the heap and in Redis), history replay is
 * budgeted, and connections per IP and per user and subscriptions per
 * node are capped.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SwitchboardNode } from '../../src/server/node.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { api } from '../helpers/api.js';
import { useNodes } from '../helpers/fixture.js';
import { metric } from '../helpers/metrics.js';
import { RawClient } from '../helpers/raw-client.js';
import { SseClient } from '../helpers/sse-client.js';
import { redisCommand, startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { sleep } from '../helpers/wait.js';

const { node, connect: open } = useNodes();
const connect = (n: SwitchboardNode, user: string) => open(n, `user=${user}`);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap in use after a full collection, bytes. */
function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

async function redisUsedMemory(port: number): Promise<number> {
  const info = await redisCommand(port, ['INFO', 'memory']);
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

const errorCode = (f: { error?: { code: string } } | undefined): string | undefined => f?.error?.code;

/**
 * Send frames from `c` at about 80 per second (under the default frame
 * rate, so that only the quotas refuse) for `ms`; `frame(i)` builds each.
 * Returns the replies' error codes and messages.
 */
async function flood(c: RawClient, ms: number, frame: (i: number) => Record<string, unknown>): Promise<{ ok: number; refused: string[] }> {
  const start = Date.now();
  const ids: number[] = [];
  for (let i = 0; Date.now() - start < ms && i < 10_000; i++) {
    const id = 100_000 + i;
    c.send({ ...frame(i), id });
    ids.push(id);
    if (i % 8 === 7) await sleep(100);
  }
  const last = ids.at(-1)!;
  await c.next((f) => f.type === 'reply' && f.id === last, 15_000);
  const replies = c.frames.filter((f): f is Extract<typeof f, { type: 'reply' }> => f.type === 'reply' && f.id >= 100_000);
  const refused = replies.filter((r) => 'error' in r && r.error).map((r) => `${errorCode(r as { error?: { code: string } })}: ${(r as { error: { message: string } }).error.message}`);
  return { ok: replies.length - refused.length, refused };
}

let redis: RedisProcess;
beforeAll(async () => {
  redis = await startRedis();
}, 30_000);
afterAll(async () => {
  await redis?.stop();
});

describe('reads create no broker state', () => {

  it('1000 subscribes to fresh channel names leave Redis DBSIZE unchanged, and recovery still works from there', async () => {
    const n = await node({
      broker: redis.url,
      limits: { maxSubscriptions: 1100 },
      namespaces: { fresh: { historySize: 10, historyTtl: 600, presence: false, publish: true, private: false } },
    });
    const c = await connect(n, 'reader');
    const before = Number(await redisCommand(redis.port, ['DBSIZE']));
    const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => c.request({ type: 'subscribe', channel: `fresh:${i}` })));
    expect(replies.filter((r) => 'result' in r)).toHaveLength(1000);
    expect(Number(await redisCommand(redis.port, ['DBSIZE']))).toBe(before);

    // A subscriber that saw nothing yet recovers what the first publish (which numbers the channel) brought.
    const first = replies[0]!;
    const position = (first as { result: { offset: number; epoch: string } }).result;
    expect(position.offset).toBe(0);
    expect(position.epoch.length).toBeGreaterThan(0);
    await c.request({ type: 'unsubscribe', channel: 'fresh:0' });
    expect((await api(n.url(''), 'POST', '/api/publish', { channel: 'fresh:0', data: 'missed' })).status).toBe(200);
    const again = await c.request({ type: 'subscribe', channel: 'fresh:0', since: { offset: 0, epoch: position.epoch } });
    expect(again).toMatchObject({ result: { recovered: true, offset: 1, messages: [{ data: 'missed', offset: 1 }] } });
  }, 60_000);

  it("reading 50,000 fresh channels leaves the memory broker's heap flat", async () => {
    const bus = new MemoryBus();
    const broker = new MemoryBroker(bus);
    await broker.start('heap', { onPublication: () => undefined, onReadyChange: () => undefined, onControl: () => undefined });
    const policy = { size: 100, ttlMs: 300_000 };
    const before = heapUsed();
    for (let i = 0; i < 50_000; i++) {
      const page = await broker.store.history(`never-published:${i}`, { since: 0, limit: 100 }, policy);
      expect(page.offset).toBe(0);
    }
    const grown = heapUsed() - before;
    await broker.close();
    // 50,000 kept streams would take several MB; nothing kept is noise.
    expect(grown).toBeLessThan(1024 * 1024);
  });
});

describe('write quotas', () => {
  it('bound the storage flood of one connection sending to random users (memory broker: heap measured)', async () => {
    const n = await node();
    const c = await connect(n, 'flooder');
    const data = 'x'.repeat(60_000);
    const before = heapUsed();
    const { ok, refused } = await flood(c, 3000, () => ({ type: 'send', user: `victim-${Math.random().toString(36).slice(2)}`, data }));
    const grown = heapUsed() - before;
    // Without quotas ~240 sends of 60 kB stay stored (~15 MB); the default quota is 4 MiB per connection per minute.
    expect(ok).toBeLessThanOrEqual(70);
    expect(refused.length).toBeGreaterThan(100);
    expect(refused[0]).toMatch(/^rate_limited: quota: more than \d+ bytes published per minute by this connection/);
    expect(grown).toBeLessThan(8 * 1024 * 1024);
    expect(await metric(n.url('/metrics'), 'switchboard_quota_exceeded_total', { quota: 'connection_publish_bytes' })).toBe(refused.length);
  }, 30_000);

  it('bound new channels written per minute per connection and per user, counting a channel once', async () => {
    const n = await node({ limits: { maxNewChannelsPerMinute: 20, maxUserNewChannelsPerMinute: 30 } });
    const a = await connect(n, 'spreader');
    // The same channel again is not new.
    const first = await flood(a, 600, (i) => ({ type: 'publish', channel: `room-${i % 25}`, data: i }));
    expect(first.ok).toBeGreaterThanOrEqual(20);
    expect(first.refused.length).toBeGreaterThan(0);
    expect(first.refused.every((r) => r.startsWith('rate_limited: quota: more than 20 new channels written per minute by this connection'))).toBe(true);
    expect(await a.request({ type: 'publish', channel: 'room-0', data: 'again' })).toHaveProperty('result');
    // A second connection of the same user gets the rest of the user's quota only.
    const b = await connect(n, 'spreader');
    const second = await flood(b, 300, (i) => ({ type: 'publish', channel: `other-${i}`, data: i }));
    expect(second.ok).toBe(10);
    expect(second.refused[0]).toMatch(/more than 30 new channels written per minute by this user/);
    // Another user is not affected.
    const other = await connect(n, 'someone-else');
    expect(await other.request({ type: 'publish', channel: 'other-99', data: 1 })).toHaveProperty('result');
  }, 30_000);

  describe('on Redis', () => {
    it('bound the flood of new channel names in Redis memory (INFO used_memory)', async () => {
      const n = await node({ broker: redis.url });
      const c = await connect(n, 'flooder');
      const data = 'y'.repeat(60_000);
      const before = await redisUsedMemory(redis.port);
      const { ok, refused } = await flood(c, 3000, (i) => ({ type: 'publish', channel: `junk-${i}-${Math.random()}`, data }));
      const grown = (await redisUsedMemory(redis.port)) - before;
      expect(ok).toBeLessThanOrEqual(70);
      expect(refused.length).toBeGreaterThan(100);
      expect(grown).toBeLessThan(8 * 1024 * 1024);
    }, 30_000);
  });
});

describe('replay budget', () => {
  it('bounds the bytes a subscribe/unsubscribe loop with `since` makes a node send', async () => {
    const n = await node({
      limits: { maxReplayBytesPerSecond: 64 * 1024 },
      namespaces: { big: { historySize: 100, historyTtl: 600, presence: false, publish: true, private: false } },
    });
    const data = 'z'.repeat(10_000);
    let epoch = '';
    for (let i = 0; i < 100; i++) {
      const r = await api(n.url(''), 'POST', '/api/publish', { channel: 'big:1', data });
      epoch = r.body.epoch as string;
    }
    const c = await connect(n, 'looper');
    let received = 0;
    c.ws.on('message', (d: Buffer) => (received += d.length));
    let limited = 0;
    const start = Date.now();
    for (let i = 0; i < 60 && Date.now() - start < 3000; i++) {
      const r = await c.request({ type: 'subscribe', channel: 'big:1', since: { offset: 0, epoch } });
      if ('error' in r && r.error) {
        expect(r.error).toMatchObject({ code: 'rate_limited', message: expect.stringMatching(/^quota: more than 65536 bytes of history replayed per second to this connection: retry in \d+ s$/) });
        limited++;
        continue;
      }
      await c.request({ type: 'unsubscribe', channel: 'big:1' });
    }
    // Each replay is ~1 MB: without the budget, 60 of them; with it, the burst (16 s worth, 1 MiB) and one more in debt.
    expect(limited).toBeGreaterThan(40);
    expect(received).toBeLessThan(2.5 * 1024 * 1024);
    expect(await metric(n.url('/metrics'), 'switchboard_quota_exceeded_total', { quota: 'replay_bytes' })).toBe(limited);
    // A subscribe without `since` replays nothing and is not refused.
    expect(await c.request({ type: 'subscribe', channel: 'big:2' })).toHaveProperty('result');
  }, 30_000);
});

describe('connection and subscription caps', () => {
  it('refuses a user past --max-connections-per-user with 429, and accepts again when one closes', async () => {
    const n = await node({ limits: { maxConnectionsPerUser: 2 } });
    const first = await connect(n, 'many');
    await connect(n, 'many');
    await expect(RawClient.open(`ws://127.0.0.1:${n.port}/ws?user=many`)).rejects.toMatchObject({ status: 429, body: expect.stringContaining('rate_limited') });
    await connect(n, 'another');
    await first.close();
    await vi.waitFor(() => connect(n, 'many'), { timeout: 5_000, interval: 50 });
    expect(await metric(n.url('/metrics'), 'switchboard_connections_rejected_total', { reason: 'connections_per_user' })).toBeGreaterThanOrEqual(1);
  });

  it('counts an event stream under --max-connections-per-user, and takes the user again once the stream closes', async () => {
    const n = await node({ limits: { maxConnectionsPerUser: 1 } });
    const stream = await SseClient.open(n.url('/sse?user=streamer'));
    expect(stream.status).toBe(200);
    await expect(RawClient.open(`ws://127.0.0.1:${n.port}/ws?user=streamer`)).rejects.toMatchObject({ status: 429 });
    stream.close();
    await vi.waitFor(() => connect(n, 'streamer'), { timeout: 5_000, interval: 50 });
  });

  it('refuses an IP past --max-connections-per-ip with 429; with --trust-proxy it counts the forwarded client IP', async () => {
    const n = await node({ limits: { maxConnectionsPerIp: 2 } });
    await connect(n, 'ip-a');
    await connect(n, 'ip-b');
    await expect(RawClient.open(`ws://127.0.0.1:${n.port}/ws?user=ip-c`)).rejects.toMatchObject({ status: 429 });
    expect(await metric(n.url('/metrics'), 'switchboard_connections_rejected_total', { reason: 'connections_per_ip' })).toBe(1);

    const proxied = await node({ trustProxy: true, limits: { maxConnectionsPerIp: 1 } });
    const via = (ip: string, user: string) => RawClient.connect(`ws://127.0.0.1:${proxied.port}/ws?user=${user}`, { headers: { 'x-forwarded-for': ip } });
    const x = await via('203.0.113.1', 'p1');
    const y = await via('203.0.113.2', 'p2');
    await expect(via('203.0.113.1', 'p3')).rejects.toMatchObject({ status: 429 });
    await Promise.all([x.close(), y.close()]);
  });

  it('refuses subscribes past --max-subscriptions-per-node with unavailable, across connections', async () => {
    const n = await node({ limits: { maxSubscriptionsPerNode: 3 } });
    const a = await connect(n, 's1');
    const b = await connect(n, 's2');
    for (const ch of ['a', 'b']) expect(await a.request({ type: 'subscribe', channel: ch })).toHaveProperty('result');
    expect(await b.request({ type: 'subscribe', channel: 'c' })).toHaveProperty('result');
    expect(await b.request({ type: 'subscribe', channel: 'd' })).toMatchObject({ error: { code: 'unavailable' } });
    await a.request({ type: 'unsubscribe', channel: 'a' });
    expect(await b.request({ type: 'subscribe', channel: 'd' })).toHaveProperty('result');
    expect(await metric(n.url('/metrics'), 'switchboard_quota_exceeded_total', { quota: 'subscriptions_per_node' })).toBe(1);
  });
});
