/**
 * `POST /api/batch` and the in-process server API of an embedded node
 * (`node.publish`, `send`, `batch`, `presence`, `user`, `history`), on two
 * nodes over a real redis-server: commands in order per channel, one result
 * each, idempotency keys per command, and the same checks and errors as HTTP.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCode, SwitchboardError, type BatchCommand, type Publication } from '../../src/protocol/index.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { api } from '../helpers/api.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';

let redis: RedisProcess | undefined;
let a: SwitchboardNode;
let b: SwitchboardNode;
const clients: RawClient[] = [];
let n = 0;
/** A name of its own for each use. */
const fresh = (label: string): string => `${label}-${process.pid}-${++n}`;

beforeAll(async () => {
  redis = await startRedis();
  const opts = { ...TEST_NODE, broker: redis.url, heartbeat: 1, limits: { maxBodyBytes: 256 * 1024 },
    namespaces: { nopresence: { historySize: 10, historyTtl: 60, presence: false, publish: true, private: false } },
  };
  a = await startNode({ ...opts, nodeId: 'batch-a' });
  b = await startNode({ ...opts, nodeId: 'batch-b' });
}, 30_000);
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await Promise.all([a, b].map((x) => x?.close()));
  await redis?.stop();
});

async function connect(on: SwitchboardNode, user: string, channels: string[] = []): Promise<RawClient> {
  const c = await RawClient.connect(`ws://127.0.0.1:${on.port}/ws?user=${user}`);
  clients.push(c);
  for (const channel of channels) expect(await c.request({ type: 'subscribe', channel })).not.toHaveProperty('error');
  return c;
}

/** What `c` received on `channel`, as the numbers published. */
function received(c: RawClient, channel: string): number[] {
  return c.messages(channel).map((m) => (m.data as { i: number }).i);
}

describe('POST /api/batch', () => {
  it('publishes every command, in order per channel, with one result each in the order given', async () => {
    const [x, y] = [fresh('room'), fresh('room')];
    const user = fresh('u');
    const watcher = await connect(b, user, [x, y]);
    const commands: BatchCommand[] = [];
    for (let i = 0; i < 300; i++) {
      if (i % 3 === 0) commands.push({ publish: { channel: x, data: { i } } });
      else if (i % 3 === 1) commands.push({ publish: { channel: y, data: { i } } });
      else commands.push({ send: { user, data: { i } } });
    }
    const r = await api(a.url(), 'POST', '/api/batch', { commands });
    expect(r.status).toBe(200);
    const results = r.body.results as Array<{ offset: number; epoch: string }>;
    expect(results).toHaveLength(300);
    // Offsets count up per channel in the order of the commands.
    for (const [lane, first] of [['x', 0], ['y', 1], ['u', 2]] as const) {
      const offsets = results.filter((_, i) => i % 3 === first).map((res) => res.offset);
      expect(offsets, lane).toEqual(offsets.map((_, k) => offsets[0]! + k));
    }
    const personal = `user:${user}`;
    await vi.waitFor(() => expect(received(watcher, x).length === 100 && received(watcher, y).length === 100 && received(watcher, personal).length === 100).toBe(true), { timeout: 10_000, interval: 10 });
    expect(received(watcher, x)).toEqual(commands.flatMap((_, i) => (i % 3 === 0 ? [i] : [])));
    expect(received(watcher, y)).toEqual(commands.flatMap((_, i) => (i % 3 === 1 ? [i] : [])));
    expect(received(watcher, personal)).toEqual(commands.flatMap((_, i) => (i % 3 === 2 ? [i] : [])));
  });

  it('answers a malformed or refused command with its error and publishes the others', async () => {
    const room = fresh('room');
    const watcher = await connect(b, fresh('u'), [room]);
    const r = await api(a.url(), 'POST', '/api/batch', {
      commands: [
        { publish: { channel: room, data: { i: 1 } } },
        { publish: { channel: 'bad channel!', data: {} } },
        { send: { user: fresh('u') } },
        { shout: { channel: room, data: {} } },
        { publish: { channel: room, data: { i: 2 } }, send: { user: 'x', data: 1 } },
        { publish: { channel: room, data: { i: 3 }, idempotencyKey: 'has spaces' } },
        { publish: { channel: room, data: { i: 4 } } },
      ],
    });
    expect(r.status).toBe(200);
    const results = r.body.results as Array<Record<string, unknown>>;
    expect(results.map((x) => ('error' in x ? (x.error as { code: string }).code : 'ok'))).toEqual([
      'ok',
      'bad_request',
      'bad_request',
      'bad_request',
      'bad_request',
      'bad_request',
      'ok',
    ]);
    await vi.waitFor(() => expect(received(watcher, room).length === 2).toBe(true), { timeout: 10_000, interval: 10 });
    expect(received(watcher, room)).toEqual([1, 4]);
  });

  it('publishes a command again only once per idempotency key, answering the first position', async () => {
    const room = fresh('room');
    const watcher = await connect(a, fresh('u'), [room]);
    const commands: BatchCommand[] = [1, 2, 3].map((i) => ({ publish: { channel: room, data: { i }, idempotencyKey: `${room}-${i}` } }));
    const first = await api(a.url(), 'POST', '/api/batch', { commands });
    const again = await api(b.url(), 'POST', '/api/batch', { commands: [...commands, { publish: { channel: room, data: { i: 4 }, idempotencyKey: `${room}-4` } }] });
    expect(again.status).toBe(200);
    const [firstResults, againResults] = [first.body.results, again.body.results] as Array<Array<{ offset: number }>>;
    expect(againResults!.slice(0, 3)).toEqual(firstResults!.map((r) => ({ ...r, replayed: true })));
    expect(againResults![3]).not.toHaveProperty('replayed');
    expect(againResults![3]!.offset).toBe(firstResults![2]!.offset + 1);
    await vi.waitFor(() => expect(received(watcher, room).length >= 4).toBe(true), { timeout: 10_000, interval: 10 });
    expect(received(watcher, room)).toEqual([1, 2, 3, 4]);
  });

  it('refuses a batch that is not 1 to 1000 commands, and the Idempotency-Key header, with 400', async () => {
    for (const body of [{}, { commands: [] }, { commands: 'x' }, { commands: Array.from({ length: 1001 }, () => ({ publish: { channel: 'c', data: 1 } })) }]) {
      const r = await api(a.url(), 'POST', '/api/batch', body);
      expect(r, JSON.stringify(body).slice(0, 60)).toMatchObject({ status: 400, body: { error: { code: 'bad_request' } } });
    }
    const res = await fetch(a.url('/api/batch'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer test-key', 'idempotency-key': 'k1' },
      body: JSON.stringify({ commands: [{ publish: { channel: fresh('room'), data: 1 } }] }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/each command/);
    expect((await api(a.url(), 'POST', '/api/batch', { commands: [] }, null)).status).toBe(401);
  });
});

describe('the embedded node', () => {
  it('publishes, sends and batches in-process, reaching clients on the other node', async () => {
    const room = fresh('room');
    const user = fresh('u');
    const watcher = await connect(b, user, [room]);
    const first = await a.publish(room, { i: 1 });
    expect(first).toMatchObject({ offset: expect.any(Number), epoch: expect.any(String) });
    await a.send(user, { i: 2 });
    const { results } = await a.batch([
      { publish: { channel: room, data: { i: 3 } } },
      { send: { user, data: { i: 4 } } },
      { publish: { channel: room, data: { i: 5 } } },
    ]);
    expect(results.every((r) => !('error' in r))).toBe(true);
    await vi.waitFor(() => expect(received(watcher, room).length === 3 && received(watcher, `user:${user}`).length === 2).toBe(true), { timeout: 10_000, interval: 10 });
    expect(received(watcher, room)).toEqual([1, 3, 5]);
    expect(received(watcher, `user:${user}`)).toEqual([2, 4]);
    const page = await b.history(room);
    expect(page.messages.map((m: Publication) => (m.data as { i: number }).i)).toEqual([1, 3, 5]);
    expect(page.offset).toBe(first.offset! + 2);
  });

  it('answers presence and a user\'s sessions for the whole cluster', async () => {
    const user = fresh('u');
    await connect(a, user);
    await connect(b, user);
    const answer = await a.user(user);
    expect(answer.online).toBe(true);
    expect(answer.sessions.map((s) => s.node).sort()).toEqual(['batch-a', 'batch-b']);
    expect((await b.presence(`user:${user}`)).members).toHaveLength(2);
    expect(await a.user(fresh('nobody'))).toEqual({ online: false, sessions: [] });
  });

  it('marks a repeated idempotency key and publishes nothing twice', async () => {
    const room = fresh('room');
    const one = await a.publish(room, { i: 1 }, { idempotencyKey: `${room}-k` });
    const two = await b.publish(room, { i: 1 }, { idempotencyKey: `${room}-k` });
    expect(two).toEqual({ ...one, duplicate: true });
    expect((await a.history(room)).messages).toHaveLength(1);
  });

  it('refuses with the API\'s errors what HTTP would refuse, and data that JSON cannot carry', async () => {
    const room = fresh('room');
    const refusal = async (call: () => Promise<unknown>): Promise<string> => {
      try {
        await call();
      } catch (err) {
        expect(err).toBeInstanceOf(SwitchboardError);
        return (err as SwitchboardError).code;
      }
      throw new Error('not refused');
    };
    expect(await refusal(() => a.publish('bad channel!', 1))).toBe(ErrorCode.BadRequest);
    expect(await refusal(() => a.send('', 1))).toBe(ErrorCode.BadRequest);
    expect(await refusal(() => a.publish(room, undefined))).toBe(ErrorCode.BadRequest);
    expect(await refusal(() => a.publish(room, 10n))).toBe(ErrorCode.BadRequest);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(await refusal(() => a.publish(room, cyclic))).toBe(ErrorCode.BadRequest);
    expect(await refusal(() => a.publish(room, 'x'.repeat(300 * 1024)))).toBe(ErrorCode.TooLarge);
    expect(await refusal(() => a.publish(room, 1, { idempotencyKey: 'two words' }))).toBe(ErrorCode.BadRequest);
    expect(await refusal(() => a.batch([]))).toBe(ErrorCode.BadRequest);
    expect(await refusal(() => a.presence('nopresence:x'))).toBe(ErrorCode.NotFound);
    expect(await refusal(() => a.history(room, { limit: -1 }))).toBe(ErrorCode.BadRequest);
    expect(await refusal(() => a.history(room, { since: 1.5 }))).toBe(ErrorCode.BadRequest);
    const { results } = await a.batch([{ publish: { channel: room, data: cyclic } }, { publish: { channel: room, data: 1 } }]);
    expect(results.map((r) => ('error' in r ? r.error.code : 'ok'))).toEqual([ErrorCode.BadRequest, 'ok']);
    expect((await a.history(room)).messages.map((m) => m.data)).toEqual([1]);
  });
});
