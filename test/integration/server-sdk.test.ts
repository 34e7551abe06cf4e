/**
 * The server SDK against real in-process nodes over a private redis-server:
 * every call, exactly-once publishes when an answer is lost or Redis dies and
 * comes back, failover between nodes, no retry of a 4xx, bounded timeouts.
 * A small HTTP proxy in front of a node counts requests and can lose answers
 * (forward the request, then cut the connection) or never answer.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SwitchboardNode } from '../../src/server/node.js';
import { SwitchboardApi, SwitchboardApiError } from '../../src/server-sdk/index.js';
import { useNodes } from '../helpers/fixture.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { sleep } from '../helpers/wait.js';

type Mode = 'pass' | 'lose-answer' | 'hang';

interface Proxy {
  url: string;
  /** Requests that reached the proxy. */
  count: number;
  /** How the next requests are handled; after `times` of them it passes again. */
  set(mode: Mode, times?: number): void;
  close(): Promise<void>;
}

/** An HTTP proxy to `target` that counts requests and, on demand, loses the answer or never answers. */
async function startProxy(target: string): Promise<Proxy> {
  let mode: Mode = 'pass';
  let left = Infinity;
  const proxy = {
    url: '',
    count: 0,
    set(m: Mode, times = Infinity) {
      mode = m;
      left = times;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    proxy.count++;
    const now: Mode = left > 0 ? mode : 'pass';
    left--;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (now === 'hang') return;
      const headers: Record<string, string> = {};
      for (const h of ['authorization', 'content-type', 'idempotency-key']) {
        const v = req.headers[h];
        if (typeof v === 'string') headers[h] = v;
      }
      fetch(target + (req.url ?? ''), {
        method: req.method,
        headers,
        body: req.method === 'GET' ? undefined : Buffer.concat(chunks),
      }).then(
        async (answer) => {
          const body = Buffer.from(await answer.arrayBuffer());
          // The node did the work; the caller never hears about it.
          if (now === 'lose-answer') return void res.socket?.destroy();
          const out: Record<string, string> = {};
          answer.headers.forEach((v, k) => {
            if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection') out[k] = v;
          });
          res.writeHead(answer.status, out);
          res.end(body);
        },
        () => res.socket?.destroy(),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

async function rejection(p: Promise<unknown>): Promise<SwitchboardApiError> {
  const err = await p.then(
    () => new Error('resolved'),
    (e: unknown) => e,
  );
  if (!(err instanceof SwitchboardApiError)) throw new Error(`expected a SwitchboardApiError, got ${String(err)}`);
  return err;
}

const KEY = 'test-key';
const { node, connect } = useNodes();
let redis: RedisProcess;
let a: SwitchboardNode;
let b: SwitchboardNode;
let proxy: Proxy;

beforeAll(async () => {
  redis = await startRedis({ persistence: true });
  a = await node({ nodeId: 'sdk-a', broker: redis.url });
  b = await node({ nodeId: 'sdk-b', broker: redis.url });
  proxy = await startProxy(a.url());
}, 30_000);

afterAll(async () => {
  await proxy?.close();
  await redis?.kill();
});

describe('SwitchboardApi against a cluster', () => {
  it('makes every call of the server API', async () => {
    const api = new SwitchboardApi({ baseUrl: b.url(), apiKey: KEY });
    const alice = await connect(a, 'user=alice');
    await alice.request({ type: 'subscribe', channel: 'sdk.room' });

    const nodes = await api.nodes();
    expect(nodes.map((n) => n.id).sort()).toEqual(['sdk-a', 'sdk-b']);
    expect((await api.route('alice')).node).toBe('sdk-b');

    const status = await api.user('alice');
    expect(status.online).toBe(true);
    expect(status.sessions.map((s) => s.node)).toEqual(['sdk-a']);
    expect((await api.presence('sdk.room')).map((m) => [m.user, m.node])).toEqual([['alice', 'sdk-a']]);

    const p1 = await api.publish('sdk.room', { n: 1 });
    expect(p1).toMatchObject({ offset: 1, replayed: false });
    const sent = await api.send('alice', { hello: true }, { idempotencyKey: 'greeting-1' });
    expect(sent).toMatchObject({ replayed: false, idempotencyKey: 'greeting-1' });
    const again = await api.send('alice', { hello: true }, { idempotencyKey: 'greeting-1' });
    expect(again).toMatchObject({ offset: sent.offset, epoch: sent.epoch, replayed: true });

    const bc = await api.broadcast(['sdk.room', 'sdk.other'], { n: 2 });
    expect(bc.results).toEqual([
      { offset: 2, epoch: p1.epoch },
      { offset: 1, epoch: expect.any(String) },
    ]);

    await alice.waitFor((f) => f.type === 'message' && f.channel === 'sdk.room', 2);
    await alice.waitFor((f) => f.type === 'message' && f.channel === 'user:alice', 1);
    expect(alice.messages('user:alice')).toHaveLength(1);

    const history = await api.history('sdk.room', { since: 0, limit: 10 });
    expect(history.offset).toBe(2);
    expect(history.messages.map((m) => m.data)).toEqual([{ n: 1 }, { n: 2 }]);
    expect((await api.history('sdk.room', { since: 1 })).messages.map((m) => m.offset)).toEqual([2]);

    expect(await api.disconnect('alice', { reason: 'bye' })).toBe(1);
    const closed = await alice.next((f) => f.type === 'disconnect');
    expect(closed).toMatchObject({ code: 4000, reason: 'bye' });
  });

  it('stores a publish once when the node’s answers are lost and the SDK retries', async () => {
    const api = new SwitchboardApi({ baseUrl: proxy.url, apiKey: KEY, backoffMin: 20 });
    proxy.count = 0;
    proxy.set('lose-answer', 2);
    const receipt = await api.publish('sdk.once', { step: 1 });
    expect(proxy.count).toBe(3);
    expect(receipt.replayed).toBe(true);
    const history = await new SwitchboardApi({ baseUrl: b.url(), apiKey: KEY }).history('sdk.once', { since: 0 });
    expect(history.messages.map((m) => m.data)).toEqual([{ step: 1 }]);
    expect(history.offset).toBe(receipt.offset);
  });

  it('fails over to the next node when the answer is lost, still storing once', async () => {
    const api = new SwitchboardApi({ baseUrl: [proxy.url, b.url()], apiKey: KEY, backoffMin: 20 });
    proxy.count = 0;
    proxy.set('lose-answer', 1);
    const receipt = await api.send('bob', { step: 'x' });
    expect(proxy.count).toBe(1);
    expect(receipt.replayed).toBe(true);
    expect(api.baseUrl).toBe(b.url());
    const history = await api.history('user:bob', { since: 0 });
    expect(history.messages.map((m) => m.data)).toEqual([{ step: 'x' }]);
  });

  it('fails over from a dead base URL to a live one', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const api = new SwitchboardApi({ baseUrl: [dead, a.url()], apiKey: KEY });
    const started = Date.now();
    expect((await api.nodes()).length).toBe(2);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(api.baseUrl).toBe(a.url());
  });

  it('never retries a 4xx', async () => {
    proxy.set('pass');
    proxy.count = 0;
    const api = new SwitchboardApi({ baseUrl: proxy.url, apiKey: KEY });
    expect(await rejection(api.publish('bad channel!', 1))).toMatchObject({ code: 'bad_request', status: 400, attempts: 1 });
    expect(proxy.count).toBe(1);
    const wrongKey = new SwitchboardApi({ baseUrl: proxy.url, apiKey: 'nope' });
    expect(await rejection(wrongKey.nodes())).toMatchObject({ code: 'unauthorized', status: 401, attempts: 1 });
    expect(proxy.count).toBe(2);
    expect(await rejection(api.disconnect('alice', { code: 1000 }))).toMatchObject({ code: 'bad_request', status: 400 });
    expect(proxy.count).toBe(3);
  });

  it('bounds a call by its deadline when a node never answers, and moves on to a live one', async () => {
    proxy.set('hang');
    const stuck = new SwitchboardApi({ baseUrl: proxy.url, apiKey: KEY, timeout: 200, deadline: 700 });
    const started = Date.now();
    const err = await rejection(stuck.user('alice'));
    const took = Date.now() - started;
    expect(err).toMatchObject({ code: 'unavailable', status: 0 });
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(1500);

    const api = new SwitchboardApi({ baseUrl: [proxy.url, b.url()], apiKey: KEY, timeout: 200 });
    const receipt = await api.publish('sdk.slow', 'once');
    expect((await api.history('sdk.slow', { since: 0 })).messages.map((m) => m.offset)).toEqual([receipt.offset]);
    proxy.set('pass');
  });

  it('publishes once through a Redis that is killed and restarted within the deadline', async () => {
    // Attempts time out (600 ms) while the nodes still wait for Redis (up to
    // --publish-deadline, 5 s) with the publish in hand: every attempt may
    // store it once Redis is back, and the key must make them one.
    const api = new SwitchboardApi({ baseUrl: [a.url(), b.url()], apiKey: KEY, timeout: 600, deadline: 20_000, retries: 40 });
    await api.publish('sdk.outage', 'before');
    await redis.kill();
    const started = Date.now();
    const pending = api.publish('sdk.outage', 'during');
    // Pause, not a wait: the outage lasts this long, with the publish waiting.
    await sleep(2000);
    await redis.restart();
    const receipt = await pending;
    // Longer than one attempt may take: the SDK retried.
    expect(Date.now() - started).toBeGreaterThan(600);
    const history = await api.history('sdk.outage', { since: 0 });
    expect(history.messages.map((m) => m.data)).toEqual(['before', 'during']);
    expect(history.offset).toBe(receipt.offset);
  }, 30_000);
});

describe('SwitchboardApi batches', () => {
  /** A fetch that counts requests per path. */
  function countingFetch(): { fetch: typeof fetch; paths: string[] } {
    const paths: string[] = [];
    return {
      paths,
      fetch: (input, init) => {
        paths.push(new URL(String(input)).pathname);
        return fetch(input, init);
      },
    };
  }

  it('runs a batch: one result per command in order, keys of its own or generated, errors per command, repeats marked', async () => {
    const api = new SwitchboardApi({ baseUrl: a.url(), apiKey: KEY });
    const first = await api.batch([
      { publish: { channel: 'sdk.batch', data: 1, idempotencyKey: 'sdk-batch-1' } },
      { publish: { channel: 'bad channel!', data: 2 } },
      { send: { user: 'bob', data: 3 } },
      { publish: { channel: 'sdk.batch', data: 4 } },
    ]);
    expect(first.results).toEqual([
      { offset: 1, epoch: expect.any(String), idempotencyKey: 'sdk-batch-1', replayed: false },
      { error: { code: 'bad_request', message: expect.any(String) }, idempotencyKey: expect.any(String) },
      { offset: expect.any(Number), epoch: expect.any(String), idempotencyKey: expect.any(String), replayed: false },
      { offset: 2, epoch: expect.any(String), idempotencyKey: expect.any(String), replayed: false },
    ]);
    const again = await api.batch([{ publish: { channel: 'sdk.batch', data: 1, idempotencyKey: 'sdk-batch-1' } }]);
    expect(again.results).toEqual([{ ...first.results[0], replayed: true }]);
    expect((await api.history('sdk.batch', { since: 0 })).messages.map((m) => m.data)).toEqual([1, 4]);
  });

  it('sends publishes that pile up past maxInFlight as batches, each call with its own receipt, in order per channel', async () => {
    const counting = countingFetch();
    const api = new SwitchboardApi({ baseUrl: b.url(), apiKey: KEY, maxInFlight: 2, fetch: counting.fetch });
    const watcher = await connect(a, 'user=batch-watcher');
    await watcher.request({ type: 'subscribe', channel: 'sdk.piles' });
    const calls = Array.from({ length: 300 }, (_, i) =>
      i % 2 === 0 ? api.publish('sdk.piles', { i }) : api.send('batch-watcher', { i }),
    );
    const receipts = await Promise.all(calls);
    expect(counting.paths.filter((p) => p === '/api/batch').length).toBeGreaterThan(0);
    expect(counting.paths.length).toBeLessThan(30);
    expect(new Set(receipts.map((r) => r.idempotencyKey)).size).toBe(300);
    const offsets = receipts.filter((_, i) => i % 2 === 0).map((r) => r.offset);
    expect(offsets).toEqual(offsets.map((_, k) => offsets[0]! + k));
    await watcher.waitFor((f) => f.type === 'message', 300);
    expect(watcher.messages('sdk.piles').map((m) => (m.data as { i: number }).i)).toEqual(calls.flatMap((_, i) => (i % 2 === 0 ? [i] : [])));
    expect(watcher.messages('user:batch-watcher').map((m) => (m.data as { i: number }).i)).toEqual(calls.flatMap((_, i) => (i % 2 === 1 ? [i] : [])));
  });

  it('rejects only the call whose command failed in a batch, and a queued call that is aborted is never sent', async () => {
    const counting = countingFetch();
    const api = new SwitchboardApi({ baseUrl: a.url(), apiKey: KEY, maxInFlight: 1, fetch: counting.fetch });
    const abort = new AbortController();
    const first = api.publish('sdk.mixed', { n: 0 });
    const good = api.publish('sdk.mixed', { n: 1 });
    const bad = api.publish('not a channel', { n: 2 });
    const aborted = api.publish('sdk.mixed', { n: 3 }, { signal: abort.signal });
    const last = api.publish('sdk.mixed', { n: 4 });
    abort.abort(new Error('changed my mind'));
    await expect(aborted).rejects.toThrow('changed my mind');
    expect(await first).toMatchObject({ replayed: false });
    expect(await good).toMatchObject({ replayed: false });
    const err = await rejection(bad);
    expect([err.code, err.status]).toEqual(['bad_request', 400]);
    expect(await last).toMatchObject({ replayed: false });
    expect(counting.paths).toEqual(['/api/publish', '/api/batch']);
    expect((await api.history('sdk.mixed', { since: 0 })).messages.map((m) => (m.data as { n: number }).n)).toEqual([0, 1, 4]);
  });

  it('with maxInFlight 0 sends every call as its own request', async () => {
    const counting = countingFetch();
    const api = new SwitchboardApi({ baseUrl: a.url(), apiKey: KEY, maxInFlight: 0, fetch: counting.fetch });
    await Promise.all(Array.from({ length: 20 }, (_, i) => api.publish('sdk.single', { i })));
    expect(counting.paths).toEqual(Array.from({ length: 20 }, () => '/api/publish'));
  });
});
