/**
 * The subscribe and publish hooks on two node processes over a real
 * redis-server, against a backend started here that checks every request's
 * signature with the server SDK. Subscribes are allowed or denied by
 * channel, publishes allowed, denied or rewritten by their data, and the
 * other node sees only what the backend let through, in the order it was
 * sent whatever the backend's delays. A backend slower than
 * `--hook-timeout`, failing or down makes the action `unavailable` while the
 * connection (and every other) goes on, and a subscribe waiting on the
 * backend holds up nothing else.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ServerFrame } from '../../src/protocol/index.js';
import { verifyWebhook } from '../../src/server-sdk/index.js';
import { api } from '../helpers/api.js';
import { startNodeProcess, writeConfig, type NodeProcess } from '../helpers/node-process.js';
import { TestBackend } from '../helpers/test-backend.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { sleep } from '../helpers/wait.js';

const SECRET = 'channel-hooks-secret-0123456789';
const TIMEOUT_MS = 2000;
/** Slower than the timeout. */
const SLOW_MS = TIMEOUT_MS * 2;

interface Call {
  hook: 'subscribe' | 'publish';
  user: string;
  session: string;
  channel: string;
  data?: unknown;
  signed: boolean;
}

let redis: RedisProcess;
let port = 0;
const calls: Call[] = [];
const nodes: NodeProcess[] = [];
const clients: RawClient[] = [];
/** Publishes with `action: 'delay'` at the backend now, and the most at once. */
const delaying = { now: 0, most: 0 };
/** Answers to `guarded:lag*` subscribes, held until the test lets them go. */
let held: Array<() => void> = [];
function release(): void {
  for (const answer of held) answer();
  held = [];
}

/** What the backend does with a publish, by its data's `action`. */
interface Action {
  action?: 'deny' | 'rewrite' | 'big' | 'slow' | 'delay';
  ms?: number;
  text?: string;
}

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    const body = JSON.parse(raw.toString('utf8')) as Omit<Call, 'hook' | 'signed'>;
    const hook = req.url === '/subscribe' ? 'subscribe' : 'publish';
    const signed = verifyWebhook(raw, req.headers['x-switchboard-signature'], SECRET);
    calls.push({ hook, ...body, signed });
    const json = (status: number, answer: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    if (!signed) return json(401, {});
    if (hook === 'subscribe') {
      const name = body.channel.slice(body.channel.indexOf(':') + 1);
      if (name.startsWith('deny')) return json(403, { error: { message: 'not a member' } });
      if (name.startsWith('slow')) return void setTimeout(() => json(200, {}), SLOW_MS);
      if (name.startsWith('lag')) return void held.push(() => json(200, {}));
      if (name === 'crash') return json(500, {});
      if (name === 'nonsense') return void res.writeHead(200).end('yes');
      return json(200, {});
    }
    const data = (body.data ?? {}) as Action;
    if (data.action === 'deny') return json(403, { error: { message: 'moderated' } });
    if (data.action === 'rewrite') return json(200, { data: { text: data.text?.toUpperCase(), checked: true } });
    if (data.action === 'big') return json(200, { data: 'x'.repeat(70 * 1024) });
    if (data.action === 'slow') return void setTimeout(() => json(200, {}), SLOW_MS);
    if (data.action === 'delay') {
      delaying.now++;
      delaying.most = Math.max(delaying.most, delaying.now);
      return void setTimeout(() => {
        delaying.now--;
        json(200, {});
      }, data.ms ?? 0);
    }
    json(200, {});
  });
}

const backend = new TestBackend(handle);

async function listen(at: number): Promise<void> {
  port = await backend.listen(at);
}

const stopBackend = (): Promise<void> => backend.stop();

async function connect(node: NodeProcess, user: string): Promise<RawClient> {
  const client = await RawClient.connect(node.ws(`user=${user}`));
  clients.push(client);
  return client;
}

const isReply = (id: number) => (f: ServerFrame) => f.type === 'reply' && f.id === id;
const isMessage = (channel: string) => (f: ServerFrame) => f.type === 'message' && f.channel === channel;
const replyIds = (c: RawClient) => c.frames.filter((f) => f.type === 'reply').map((f) => (f as { id: number }).id);

beforeAll(async () => {
  redis = await startRedis();
  await listen(0);
  const config = writeConfig({
    namespaces: { guarded: { subscribeHook: true }, moderated: { publishHook: true }, user: { publishHook: true } },
  });
  const hooks = ['--subscribe-hook', `http://127.0.0.1:${port}/subscribe`, '--publish-hook', `http://127.0.0.1:${port}/publish`];
  for (const id of ['hooks-a', 'hooks-b']) {
    nodes.push(
      await startNodeProcess(id, ['--broker', redis.url, '--insecure', '--config', config, ...hooks, '--hook-timeout', String(TIMEOUT_MS)], {
        SWITCHBOARD_HOOK_SECRET: SECRET,
      }),
    );
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.stop()));
  await stopBackend().catch(() => undefined);
  await redis?.stop();
});

describe('the subscribe hook across two nodes over Redis', () => {
  it('allows a subscribe, asked signed with {user, session, channel}; what the other node publishes arrives', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const reader = await connect(a, 'sub-ok');
    expect(await reader.request({ type: 'subscribe', channel: 'guarded:open' })).toMatchObject({ result: { channel: 'guarded:open' } });
    expect(calls.filter((c) => c.hook === 'subscribe' && c.user === 'sub-ok')).toEqual([
      { hook: 'subscribe', user: 'sub-ok', session: reader.welcome.session, channel: 'guarded:open', signed: true },
    ]);
    const writer = await connect(b, 'sub-ok-writer');
    expect(await writer.request({ type: 'publish', channel: 'guarded:open', data: 'from b' })).toMatchObject({ result: {} });
    expect(await reader.next(isMessage('guarded:open'), 5000)).toMatchObject({ data: 'from b', from: 'sub-ok-writer' });
    // Neither the personal channel nor the server API asks.
    expect(calls.filter((c) => c.channel.startsWith('user:') && c.hook === 'subscribe')).toEqual([]);
  });

  it('a denied subscribe is forbidden with the backend’s message, and nothing published there arrives', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const c = await connect(a, 'sub-denied');
    expect(await c.request({ type: 'subscribe', channel: 'guarded:deny-room' })).toMatchObject({ error: { code: 'forbidden', message: 'not a member' } });
    expect(await c.request({ type: 'subscribe', channel: 'guarded:marker' })).toMatchObject({ result: {} });
    expect((await api(b.url(), 'POST', '/api/publish', { channel: 'guarded:deny-room', data: 'secret' })).status).toBe(200);
    expect((await api(b.url(), 'POST', '/api/publish', { channel: 'guarded:marker', data: 'marker' })).status).toBe(200);
    await c.next(isMessage('guarded:marker'), 5000);
    await sleep(200);
    expect(c.messages('guarded:deny-room')).toEqual([]);
  });

  it('a subscribe waiting on the backend holds up neither the connection’s other frames nor other users; subscribe then unsubscribe ends unsubscribed', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const c = await connect(a, 'sub-lag');
    const other = await connect(a, 'sub-lag-other');
    const reader = await connect(b, 'sub-lag-reader');
    expect(await reader.request({ type: 'subscribe', channel: 'free:lag' })).toMatchObject({ result: {} });
    expect(await c.request({ type: 'subscribe', channel: 'free:marker' })).toMatchObject({ result: {} });
    c.send({ type: 'subscribe', id: 100, channel: 'guarded:lag-1' });
    c.send({ type: 'unsubscribe', id: 101, channel: 'guarded:lag-1' });
    c.send({ type: 'ping', id: 102 });
    c.send({ type: 'publish', id: 103, channel: 'free:lag', data: 'not held up' });
    await c.next((f) => f.type === 'pong' && f.id === 102, 5000);
    await c.next(isReply(103), 5000);
    expect(await reader.next(isMessage('free:lag'), 5000)).toMatchObject({ data: 'not held up' });
    expect(await other.request({ type: 'subscribe', channel: 'free:other' })).toMatchObject({ result: {} });
    expect(await other.request({ type: 'publish', channel: 'free:other', data: 1 })).toMatchObject({ result: {} });
    // All of that while the backend had not answered the subscribe yet.
    await vi.waitFor(() => expect(held).toHaveLength(1), { timeout: 5000, interval: 10 });
    expect(c.frames.some(isReply(100)) || c.frames.some(isReply(101))).toBe(false);
    release();

    await c.next(isReply(101), 5000);
    expect(c.frames.find(isReply(100))).toMatchObject({ result: { channel: 'guarded:lag-1' } });
    expect(replyIds(c).filter((id) => id === 100 || id === 101)).toEqual([100, 101]);
    expect((await api(b.url(), 'POST', '/api/publish', { channel: 'guarded:lag-1', data: 'after leaving' })).status).toBe(200);
    expect((await api(b.url(), 'POST', '/api/publish', { channel: 'free:marker', data: 'marker' })).status).toBe(200);
    await c.next(isMessage('free:marker'), 5000);
    await sleep(200);
    expect(c.messages('guarded:lag-1')).toEqual([]);
  });
});

describe('the publish hook across two nodes over Redis', () => {
  it('allows, denies and rewrites; the other node sees only what it let through, rewritten, and the server API never asks', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const reader = await connect(b, 'pub-reader');
    expect(await reader.request({ type: 'subscribe', channel: 'moderated:room' })).toMatchObject({ result: {} });
    const writer = await connect(a, 'pub-writer');
    const publish = (data: Action & { n: number }) => writer.request({ type: 'publish', channel: 'moderated:room', data });
    expect(await publish({ n: 1, action: 'deny' })).toMatchObject({ error: { code: 'forbidden', message: 'moderated' } });
    expect(await publish({ n: 2, action: 'rewrite', text: 'hello' })).toMatchObject({ result: {} });
    expect(await publish({ n: 3, action: 'big' })).toMatchObject({ error: { code: 'too_large', message: expect.stringContaining('--max-frame-bytes') } });
    expect(await publish({ n: 4 })).toMatchObject({ result: {} });
    const asked = calls.filter((c) => c.hook === 'publish' && c.user === 'pub-writer');
    expect(asked.map((c) => [c.session, c.channel, (c.data as { n: number }).n, c.signed])).toEqual(
      [1, 2, 3, 4].map((n) => [writer.welcome.session, 'moderated:room', n, true]),
    );
    expect((await api(a.url(), 'POST', '/api/publish', { channel: 'moderated:room', data: { n: 5 } })).status).toBe(200);
    await reader.waitFor(isMessage('moderated:room'), 3, 5000);
    await sleep(200);
    expect(reader.messages('moderated:room').map((m) => m.data)).toEqual([{ text: 'HELLO', checked: true }, { n: 4 }, { n: 5 }]);
    expect(calls.filter((c) => c.hook === 'publish' && c.user === 'pub-writer')).toHaveLength(4);
  });

  it('asks for a send to another user (a publish to the user namespace), whose node gets the rewritten data', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const bob = await connect(b, 'send-bob');
    const alice = await connect(a, 'send-alice');
    expect(await alice.request({ type: 'send', user: 'send-bob', data: { action: 'rewrite', text: 'psst' } })).toMatchObject({ result: {} });
    expect(await bob.next(isMessage('user:send-bob'), 5000)).toMatchObject({ data: { text: 'PSST', checked: true }, from: 'send-alice' });
    expect(calls.find((c) => c.user === 'send-alice')).toMatchObject({ hook: 'publish', channel: 'user:send-bob', signed: true });
  });

  it('asks for one connection’s publishes on a channel one at a time, and keeps their order whatever the backend’s delays', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const reader = await connect(b, 'order-reader');
    expect(await reader.request({ type: 'subscribe', channel: 'moderated:order' })).toMatchObject({ result: {} });
    const writer = await connect(a, 'order-writer');
    const delays = [150, 0, 90, 10, 120, 0, 60, 30, 100, 5, 80, 0, 40, 110, 20, 0, 70, 15, 50, 0];
    for (const [n, ms] of delays.entries()) writer.send({ type: 'publish', id: 200 + n, channel: 'moderated:order', data: { action: 'delay', ms, n } });
    await reader.waitFor(isMessage('moderated:order'), delays.length, 15_000);
    expect(reader.messages('moderated:order').map((m) => (m.data as { n: number }).n)).toEqual(delays.map((_, n) => n));
    await writer.waitFor((f) => f.type === 'reply' && f.id >= 200, delays.length, 5000);
    expect(writer.frames.filter((f) => f.type === 'reply' && 'error' in f)).toEqual([]);
    expect(delaying.most).toBe(1);
  });
});

describe('a backend that fails', () => {
  it('slower than --hook-timeout, failing or answering nonsense: unavailable, nothing done, the connection healthy meanwhile and after', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const reader = await connect(b, 'slow-reader');
    for (const channel of ['moderated:slow', 'free:slow']) expect(await reader.request({ type: 'subscribe', channel })).toMatchObject({ result: {} });
    const c = await connect(a, 'slow-writer');
    const started = Date.now();
    c.send({ type: 'subscribe', id: 300, channel: 'guarded:slow' });
    c.send({ type: 'publish', id: 301, channel: 'moderated:slow', data: { action: 'slow' } });
    c.send({ type: 'ping', id: 302 });
    c.send({ type: 'publish', id: 303, channel: 'free:slow', data: 'meanwhile' });
    await c.next((f) => f.type === 'pong' && f.id === 302, 5000);
    expect(await reader.next(isMessage('free:slow'), 5000)).toMatchObject({ data: 'meanwhile' });
    expect(c.frames.some(isReply(300)) || c.frames.some(isReply(301))).toBe(false);
    expect(await c.next(isReply(300), 5000)).toMatchObject({ error: { code: 'unavailable' } });
    expect(await c.next(isReply(301), 5000)).toMatchObject({ error: { code: 'unavailable' } });
    expect(Date.now() - started).toBeLessThan(SLOW_MS);
    for (const channel of ['guarded:crash', 'guarded:nonsense']) {
      expect(await c.request({ type: 'subscribe', channel })).toMatchObject({ error: { code: 'unavailable' } });
    }
    // Later allowed actions work; the refused subscribe left nothing behind, the refused publish published nothing.
    expect(await c.request({ type: 'subscribe', channel: 'guarded:open-later' })).toMatchObject({ result: {} });
    expect(await c.request({ type: 'publish', channel: 'moderated:slow', data: 'after' })).toMatchObject({ result: {} });
    expect(await reader.next(isMessage('moderated:slow'), 5000)).toMatchObject({ data: 'after' });
    expect(reader.messages('moderated:slow')).toHaveLength(1);

    const metrics = await (await fetch(a.url('/metrics'))).text();
    expect(metrics).toMatch(/switchboard_hook_requests_total\{[^}]*hook="subscribe"[^}]*outcome="unavailable"[^}]*\} [3-9]/);
    expect(metrics).toMatch(/switchboard_hook_requests_total\{[^}]*hook="publish"[^}]*outcome="forbidden"[^}]*\} [1-9]/);
  });

  it('while the backend is down: unavailable, nothing published, the connection healthy; once back, actions work again', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const reader = await connect(b, 'down-reader');
    expect(await reader.request({ type: 'subscribe', channel: 'moderated:down' })).toMatchObject({ result: {} });
    const c = await connect(a, 'down-writer');
    await stopBackend();
    try {
      expect(await c.request({ type: 'subscribe', channel: 'guarded:down' })).toMatchObject({ error: { code: 'unavailable' } });
      expect(await c.request({ type: 'publish', channel: 'moderated:down', data: 'lost' })).toMatchObject({ error: { code: 'unavailable' } });
      c.send({ type: 'ping', id: 400 });
      expect(await c.next((f) => f.type === 'pong' && f.id === 400)).toBeTruthy();
    } finally {
      await listen(port);
    }
    await vi.waitFor(async () => expect(await c.request({ type: 'subscribe', channel: 'guarded:down' })).toMatchObject({ result: {} }), {
      timeout: 5000,
      interval: 100,
    });
    expect(await c.request({ type: 'publish', channel: 'moderated:down', data: 'back' })).toMatchObject({ result: {} });
    expect(await reader.next(isMessage('moderated:down'), 5000)).toMatchObject({ data: 'back' });
    expect(reader.messages('moderated:down').map((m) => m.data)).toEqual(['back']);
  });
});
