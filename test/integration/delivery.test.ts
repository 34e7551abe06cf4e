/**
 * Delivery guarantees over a real redis-server and two nodes: offline
 * delivery from acknowledged positions (per user and per device, across
 * nodes, with the SDK acknowledging on its own), idempotent API publishes,
 * and publishes that wait out (or retry through) a Redis restart within the
 * publish deadline.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { SwitchboardClient } from '../../src/client/index.js';
import type { Publication } from '../../src/protocol/index.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import type { NodeOptionsInput } from '../../src/server/options.js';
import { ACK_FLUSH_MS } from '../../src/server/core/acks.js';
import { api } from '../helpers/api.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { metric } from '../helpers/metrics.js';
import { sleep } from '../helpers/wait.js';

let redis: RedisProcess | undefined;
let a: SwitchboardNode;
let b: SwitchboardNode;
const extra: SwitchboardNode[] = [];
const clients: RawClient[] = [];
const sdks: SwitchboardClient[] = [];
let n = 0;
/** A user id of its own for each use. */
const fresh = (label: string): string => `${label}-${process.pid}-${++n}`;

async function node(id: string, opts: NodeOptionsInput = {}): Promise<SwitchboardNode> {
  return startNode({ ...TEST_NODE, nodeId: id, broker: redis!.url, heartbeat: 1, ...opts });
}

beforeAll(async () => {
  redis = await startRedis({ persistence: true });
  a = await node('dl-a');
  b = await node('dl-b');
}, 30_000);
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const c of sdks.splice(0)) c.disconnect();
  await Promise.all(extra.splice(0).map((x) => x.close()));
});
afterAll(async () => {
  await Promise.all([a, b].map((x) => x?.close()));
  await redis?.stop();
});

async function connect(on: SwitchboardNode, query: string): Promise<RawClient> {
  const c = await RawClient.connect(`ws://127.0.0.1:${on.port}/ws?${query}`);
  clients.push(c);
  return c;
}

async function sendTo(user: string, data: unknown, via = a): Promise<{ offset: number; epoch: string }> {
  const r = await api(via.url(), 'POST', '/api/send', { user, data });
  expect(r.status).toBe(200);
  return r.body as { offset: number; epoch: string };
}

/** Acknowledged positions `x` has written to the broker. */
const acksSaved = (x: SwitchboardNode): Promise<number> => metric(x.url('/metrics'), 'switchboard_acks_saved_total', { result: 'ok' });
const readyz = async (x: SwitchboardNode): Promise<number> => (await fetch(x.url('/readyz'))).status;
const datas = (messages: Publication[]): unknown[] => messages.map((m) => m.data);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('offline delivery', () => {
  it('a user who never connected gets everything retained on a fresh connection, then only what it did not acknowledge', async () => {
    const user = fresh('offline');
    for (const i of range(1, 20)) await sendTo(user, i, i % 2 ? a : b);

    const first = await connect(a, `user=${user}`);
    expect(first.welcome).toMatchObject({ recovered: true, offset: 20 });
    expect(datas(first.welcome.messages)).toEqual(range(1, 20));
    const saved = await acksSaved(a);
    first.send({ type: 'ack', channel: `user:${user}`, offset: 12 });
    await vi.waitUntil(async () => (await acksSaved(a)) > saved, { timeout: 10_000, interval: 20 });
    await first.close();

    // A fresh connection on the other node resumes after the acknowledged offset.
    const second = await connect(b, `user=${user}`);
    expect(second.welcome).toMatchObject({ recovered: true, offset: 20 });
    expect(datas(second.welcome.messages)).toEqual(range(13, 20));
    // Live messages go on from there; acknowledging them all leaves nothing to replay.
    await sendTo(user, 21);
    await second.next((f) => f.type === 'message' && f.data === 21);
    const savedOnB = await acksSaved(b);
    second.send({ type: 'ack', channel: `user:${user}`, offset: 21 });
    await vi.waitUntil(async () => (await acksSaved(b)) > savedOnB, { timeout: 10_000, interval: 20 });
    await second.close();
    const third = await connect(a, `user=${user}`);
    expect(third.welcome.messages).toEqual([]);
    expect(third.welcome).toMatchObject({ recovered: true, offset: 21 });
  });

  it('each device keeps its own position: every device gets everything it has not acknowledged', async () => {
    const user = fresh('devices');
    for (const i of range(1, 6)) await sendTo(user, i);
    const phone = await connect(a, `user=${user}&device=phone`);
    expect(datas(phone.welcome.messages)).toEqual(range(1, 6));
    const saved = await acksSaved(a);
    phone.send({ type: 'ack', channel: `user:${user}`, offset: 6 });
    await vi.waitUntil(async () => (await acksSaved(a)) > saved, { timeout: 10_000, interval: 20 });
    await phone.close();
    await sendTo(user, 7);

    // The laptop never acknowledged: it gets all seven, though the phone read six.
    const laptop = await connect(b, `user=${user}&device=laptop`);
    expect(datas(laptop.welcome.messages)).toEqual(range(1, 7));
    const phoneAgain = await connect(b, `user=${user}&device=phone`);
    expect(datas(phoneAgain.welcome.messages)).toEqual([7]);
    // Both connected: both get what comes next.
    await sendTo(user, 8);
    for (const c of [laptop, phoneAgain]) await c.next((f) => f.type === 'message' && f.data === 8);
  });

  it('ignores acks past what the session was sent, and acks of other channels', async () => {
    const user = fresh('bogus');
    for (const i of range(1, 3)) await sendTo(user, i);
    const c = await connect(a, `user=${user}`);
    expect(datas(c.welcome.messages)).toEqual([1, 2, 3]);
    c.send({ type: 'ack', channel: `user:${user}`, offset: 99 });
    c.send({ type: 'ack', channel: 'news', offset: 3 });
    // still answered and open
    c.send({ type: 'ping', id: 1 });
    await c.next((f) => f.type === 'pong');
    // Pause, not a wait: the ack beyond the offset must not be written, so no write can be waited for.
    await sleep(ACK_FLUSH_MS * 3);
    await c.close();
    const again = await connect(b, `user=${user}`);
    expect(datas(again.welcome.messages)).toEqual([1, 2, 3]);
  });

  it('refuses a malformed ?device= before the upgrade', async () => {
    for (const device of ['x'.repeat(65), 'has space', '']) {
      await expect(RawClient.open(`ws://127.0.0.1:${a.port}/ws?user=u1&device=${encodeURIComponent(device)}`)).rejects.toMatchObject({ status: 400 });
    }
  });

  it('a backlog larger than a connection may buffer arrives whole: the welcome carries the first part, the rest follows paced', async () => {
    // 64 KiB of buffer: half of it for the welcome, and 120 messages of 2 KB, 240 KB, to replay.
    const small = await node('dl-small', { limits: { maxBufferedBytes: 64 * 1024 } });
    extra.push(small);
    const user = fresh('backlog');
    const blob = 'x'.repeat(2_000);
    for (const i of range(1, 120)) await sendTo(user, { i, blob }, small);
    const c = await connect(small, `user=${user}`);
    const inline = c.welcome.messages.length;
    expect(inline).toBeGreaterThan(0);
    expect(inline).toBeLessThan(120);
    // The welcome's position is where what it carries ends.
    expect(c.welcome.offset).toBe(inline);
    await sendTo(user, { i: 121, blob: '' }, b);
    await c.waitFor((f) => f.type === 'message', 121 - inline, 15_000);
    const all = [...c.welcome.messages, ...c.messages()].map((m) => (m.data as { i: number }).i);
    expect(all).toEqual(range(1, 121));
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('the SDK acknowledges on its own: a fresh client of the same device later gets only what arrived since', async () => {
    const user = fresh('sdk');
    for (const i of range(1, 5)) await sendTo(user, i);
    const got: unknown[] = [];
    const one = new SwitchboardClient({ url: a.url('/ws').replace('http', 'ws'), params: { user }, device: 'tablet', WebSocket: WebSocket as never });
    sdks.push(one);
    one.on('message', (m) => void got.push(m.data));
    one.connect();
    await vi.waitUntil(() => got.length === 5, { timeout: 10_000, interval: 20 });
    await sendTo(user, 6);
    await vi.waitUntil(() => got.length === 6, { timeout: 10_000, interval: 20 });
    expect(got).toEqual(range(1, 6));
    // disconnect() sends the SDK's pending acks; the node writes them within ACK_FLUSH_MS.
    one.disconnect();
    // Pause, not a wait: the SDK may have acked already, so no new write can be counted on.
    await sleep(ACK_FLUSH_MS * 3);
    for (const i of range(7, 9)) await sendTo(user, i, b);

    const later: unknown[] = [];
    const two = new SwitchboardClient({ url: b.url('/ws').replace('http', 'ws'), params: { user }, device: 'tablet', WebSocket: WebSocket as never });
    sdks.push(two);
    two.on('message', (m) => void later.push(m.data));
    two.connect();
    await vi.waitUntil(() => later.length >= 3, { timeout: 10_000, interval: 20 });
    // Pause, not a wait: no duplicate may follow.
    await sleep(200);
    expect(later).toEqual([7, 8, 9]);
  });
});

describe('idempotent publishing', () => {
  it('the same key publishes once and answers the same {offset, epoch}, from any node', async () => {
    const user = fresh('idem');
    const c = await connect(b, `user=${user}`);
    const body = { user, data: 'charge #1', idempotencyKey: 'order-1' };
    const first = await fetch(a.url('/api/send'), { method: 'POST', headers: { authorization: 'Bearer test-key', 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const again = await fetch(b.url('/api/send'), { method: 'POST', headers: { authorization: 'Bearer test-key', 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const viaHeader = await fetch(a.url('/api/send'), {
      method: 'POST',
      headers: { authorization: 'Bearer test-key', 'content-type': 'application/json', 'idempotency-key': 'order-1' },
      body: JSON.stringify({ user, data: 'charge #1' }),
    });
    expect(first.status).toBe(200);
    const answer = await first.json();
    expect(answer).toEqual({ offset: 1, epoch: expect.any(String) });
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    for (const r of [again, viaHeader]) {
      expect(r.status).toBe(200);
      expect(await r.json()).toEqual(answer);
      expect(r.headers.get('idempotent-replayed')).toBe('true');
    }
    await sendTo(user, 'barrier');
    await c.next((f) => f.type === 'message' && f.data === 'barrier');
    expect(c.messages().map((m) => m.data)).toEqual(['charge #1', 'barrier']);
  });

  it('concurrent repeats from several nodes: one publication', async () => {
    const room = `chat:${fresh('race')}`;
    const results = await Promise.all(range(1, 10).map((i) => api((i % 2 ? a : b).url(), 'POST', '/api/publish', { channel: room, data: 'once', idempotencyKey: 'k' })));
    for (const r of results) expect(r).toEqual({ status: 200, body: results[0]!.body });
    const page = await api(a.url(), 'GET', `/api/history/${room}?since=0`);
    expect((page.body.messages as Publication[]).map((m) => m.data)).toEqual(['once']);
  });

  it('refuses bad keys with 400', async () => {
    const cases: Array<[Record<string, unknown>, Record<string, string>]> = [
      [{ idempotencyKey: '' }, {}],
      [{ idempotencyKey: 'has space' }, {}],
      [{ idempotencyKey: 'x'.repeat(129) }, {}],
      [{ idempotencyKey: 42 }, {}],
      [{ idempotencyKey: 'one' }, { 'idempotency-key': 'two' }],
      [{}, { 'idempotency-key': 'ünïcode' }],
    ];
    for (const [extraBody, headers] of cases) {
      const r = await fetch(a.url('/api/publish'), {
        method: 'POST',
        headers: { authorization: 'Bearer test-key', 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ channel: 'chat:bad-keys', data: 1, ...extraBody }),
      });
      expect(r.status).toBe(400);
      expect(await r.json()).toMatchObject({ error: { code: 'bad_request' } });
    }
  });
});

describe('publishing through a Redis restart', () => {
  it('waits for Redis within the deadline: answered 200, stored once, delivered once; past the deadline, 503', async () => {
    const user = fresh('retry');
    const c = await connect(b, `user=${user}`);
    await sendTo(user, 'before');
    await redis!.kill();
    await vi.waitUntil(async () => (await readyz(a)) === 503, { timeout: 10_000, interval: 20 });
    // Issued while Redis is down; it comes back 1 s later, inside the 5 s deadline.
    const started = Date.now();
    const keyed = api(a.url(), 'POST', '/api/send', { user, data: 'keyed', idempotencyKey: 'during-outage' });
    const plain = api(a.url(), 'POST', '/api/send', { user, data: 'plain' });
    // Pause, not a wait: the outage lasts this long, with the publishes waiting.
    await sleep(1_000);
    await redis!.restart();
    const [k, p] = await Promise.all([keyed, plain]);
    expect(k.status).toBe(200);
    expect(p.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(5_000 + 1_000);
    const repeat = await api(b.url(), 'POST', '/api/send', { user, data: 'keyed', idempotencyKey: 'during-outage' });
    expect(repeat).toEqual({ status: 200, body: k.body });
    await sendTo(user, 'after', b);
    await vi.waitUntil(() => c.messages().some((m) => m.data === 'after'), { timeout: 15_000, interval: 20 });
    const got = c.messages().map((m) => m.data);
    expect(got.filter((d) => d === 'keyed')).toHaveLength(1);
    expect(got.filter((d) => d === 'plain')).toHaveLength(1);
    expect(got[0]).toBe('before');
    expect(got.at(-1)).toBe('after');

    // A node with a short deadline answers 503 once it has passed.
    const quick = await node('dl-quick', { publishDeadline: 300 });
    extra.push(quick);
    await redis!.kill();
    await vi.waitUntil(async () => (await readyz(quick)) === 503, { timeout: 10_000, interval: 20 });
    const t0 = Date.now();
    const refused = await api(quick.url(), 'POST', '/api/send', { user, data: 'late', idempotencyKey: 'late' });
    expect(refused).toMatchObject({ status: 503, body: { error: { code: 'unavailable' } } });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(Date.now() - t0).toBeLessThan(3_000);
    await redis!.restart();
    await vi.waitUntil(async () => (await Promise.all([quick, a, b].map(readyz))).every((s) => s === 200), { timeout: 15_000, interval: 20 });
  }, 60_000);
});
