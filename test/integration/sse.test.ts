/**
 * Server-Sent Events at `/sse` (SPEC "Other ways in"), on two node processes
 * over a real redis-server: a stream subscribed to two channels receives
 * what the server API publishes on the other node; cut, it misses nothing
 * when it comes back with its `Last-Event-ID` (on either node), and gets
 * nothing twice. Identity and channel checks are those of `/ws`. A refusal
 * the client may retry reaches an `EventSource` as a stream that ends with a
 * `disconnect` event, so that it reconnects by itself.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { api } from '../helpers/api.js';
import { metric } from '../helpers/metrics.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { startNodeProcess, writeConfig, type NodeProcess } from '../helpers/node-process.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { SseClient } from '../helpers/sse-client.js';
import { sleep } from '../helpers/wait.js';

const SECRET = 'sse-test-secret-of-decent-length';
const KEY = 'sse-test-key';
const TIMEOUT = 60_000;

let redis: RedisProcess | undefined;
let a: NodeProcess | undefined;
let b: NodeProcess | undefined;
const streams: SseClient[] = [];

function token(sub: string, channels?: string[]): Promise<string> {
  return new SignJWT(channels ? { sub, channels } : { sub })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
}

/** Open `/sse?query` on a node (a process or in this one); the stream is closed after the tests. */
async function stream(node: { url(path: string): string }, query: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const s = await SseClient.open(node.url(`/sse?${query}`), headers);
  streams.push(s);
  return s;
}

async function publish(node: NodeProcess, channel: string, data: unknown): Promise<{ offset: number; epoch: string }> {
  const { status, body } = await api(node.url(), 'POST', '/api/publish', { channel, data }, KEY);
  expect(status).toBe(200);
  return body as { offset: number; epoch: string };
}

/** The (channel, offset) of each message event, in arrival order. */
function positions(s: SseClient): string[] {
  return s.parsed('message').map((m) => `${String(m.channel)}#${String(m.offset)}`);
}

beforeAll(async () => {
  redis = await startRedis();
  const config = writeConfig({ namespaces: { secret: { private: true, history: { size: 100, ttl: 300 } } } });
  const args = ['--broker', redis.url, '--secret', SECRET, '--api-key', KEY, '--config', config, '--ping', '1', '--pong-timeout', '1', '--heartbeat', '1'];
  [a, b] = await Promise.all([startNodeProcess('sse-a', args), startNodeProcess('sse-b', args)]);
}, TIMEOUT);

afterAll(async () => {
  for (const s of streams.splice(0)) s.close();
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
}, TIMEOUT);

describe('GET /sse', () => {
  it('streams two channels published on another node, and resumes from Last-Event-ID without loss or repeats', { timeout: TIMEOUT }, async () => {
    const s = await stream(a!, `token=${await token('alice')}&channel=news&channel=sports`);
    expect(s.status).toBe(200);
    expect(s.res.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(s.res.headers['cache-control']).toBe('no-cache');
    expect(s.res.headers['x-accel-buffering']).toBe('no');
    await s.count('subscribed', 2);
    expect(s.events[0]!.event).toBe('welcome');
    expect(s.parsed('welcome')[0]).toMatchObject({ type: 'welcome', user: 'alice', channel: 'user:alice' });
    expect(s.parsed('subscribed').map((e) => e.channel).sort()).toEqual(['news', 'sports']);

    // Live, from the other node over Redis, interleaved on the two channels.
    const sent: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const n = await publish(b!, 'news', { n: i });
      sent.push(`news#${n.offset}`);
      const p = await publish(b!, 'sports', { p: i });
      sent.push(`sports#${p.offset}`);
    }
    await s.count('message', 6);
    expect(positions(s)).toEqual(sent);
    const lastId = s.lastEventId;
    expect(lastId).not.toBe('');
    s.close();

    // Published while the stream is down: on both channels and to the user.
    const missed: string[] = [];
    for (let i = 4; i <= 7; i++) {
      const n = await publish(b!, 'news', { n: i });
      missed.push(`news#${n.offset}`);
      if (i % 2 === 0) {
        const p = await publish(a!, 'sports', { p: i });
        missed.push(`sports#${p.offset}`);
      }
    }
    const sent2 = await api(b!.url(), 'POST', '/api/send', { user: 'alice', data: 'while away' }, KEY);
    expect(sent2.status).toBe(200);
    missed.push(`user:alice#${String(sent2.body.offset)}`);

    // Back, as an EventSource would, on the other node this time.
    const back = await stream(b!, `token=${await token('alice')}&channel=news&channel=sports`, { 'last-event-id': lastId });
    expect(back.status).toBe(200);
    await back.count('subscribed', 2);
    expect(back.parsed('welcome')[0]).toMatchObject({ recovered: true });
    for (const sub of back.parsed('subscribed')) expect(sub).toMatchObject({ recovered: true });
    await back.count('message', missed.length);
    const got = positions(back);
    // Exactly the missed ones, none twice, each channel in order.
    expect([...got].sort()).toEqual([...missed].sort());
    expect(new Set(got).size).toBe(got.length);
    for (const channel of ['news', 'sports', 'user:alice']) {
      expect(got.filter((g) => g.startsWith(`${channel}#`))).toEqual(missed.filter((m) => m.startsWith(`${channel}#`)));
    }
    // And live again after the recovery.
    const live = await publish(a!, 'news', { n: 8 });
    await back.count('message', missed.length + 1);
    expect(positions(back).at(-1)).toBe(`news#${live.offset}`);
    // Nothing more arrives (no late duplicate of a recovered message).
    await sleep(300); // a window in which nothing may arrive
    expect(back.parsed('message')).toHaveLength(missed.length + 1);
  });

  it('marks a channel whose position history cannot cover as recovered: false', { timeout: TIMEOUT }, async () => {
    const at = await publish(a!, 'news', { n: 'now' });
    const stale = Buffer.from(JSON.stringify({ news: [at.offset, 'another-epoch'], sports: [0, 'old'] })).toString('base64url');
    const s = await stream(a!, `token=${await token('bob')}&channel=news`, { 'last-event-id': stale });
    const [sub] = await s.count('subscribed', 1);
    expect(sub).toMatchObject({ channel: 'news', recovered: false });
    // The id now carries the channel's real position: resuming from it recovers.
    const id = s.lastEventId;
    s.close();
    const again = await stream(b!, `token=${await token('bob')}&channel=news`, { 'last-event-id': id });
    const [sub2] = await again.count('subscribed', 1);
    expect(sub2).toMatchObject({ channel: 'news', recovered: true });
  });

  it('refuses a private channel without a grant, and subscribes it with one', { timeout: TIMEOUT }, async () => {
    const denied = await stream(a!, `token=${await token('carol')}&channel=secret:room&channel=news`);
    const [refused] = await denied.count('refused', 1);
    expect(refused).toMatchObject({ type: 'refused', channel: 'secret:room', error: { code: 'forbidden' } });
    // The other channel of the query is subscribed all the same.
    const [sub] = await denied.count('subscribed', 1);
    expect(sub).toMatchObject({ channel: 'news' });
    const granted = await stream(a!, `token=${await token('carol', ['secret:*'])}&channel=secret:room`);
    const [ok] = await granted.count('subscribed', 1);
    expect(ok).toMatchObject({ channel: 'secret:room', recovered: true });
    const pub = await publish(b!, 'secret:room', { hush: true });
    const [message] = await granted.count('message', 1);
    expect(message).toMatchObject({ channel: 'secret:room', offset: pub.offset, data: { hush: true } });
    expect(denied.parsed('message').some((m) => m.channel === 'secret:room')).toBe(false);
  });

  it('answers 401 to a bad or missing token, and 400 to a malformed query or event id', { timeout: TIMEOUT }, async () => {
    const bad = await stream(a!, 'token=not-a-jwt&channel=news');
    expect(bad.status).toBe(401);
    expect(JSON.parse(await bad.body())).toMatchObject({ error: { code: 'unauthorized' } });
    const none = await stream(a!, 'channel=news');
    expect(none.status).toBe(401);
    const forged = await stream(a!, 'channel=news', { authorization: `Bearer ${await token('dave')}x` });
    expect(forged.status).toBe(401);
    const header = await stream(a!, 'channel=news', { authorization: `Bearer ${await token('dave')}` });
    expect(header.status).toBe(200);
    const badName = await stream(a!, `token=${await token('dave')}&channel=${encodeURIComponent('bad name')}`);
    expect(badName.status).toBe(400);
    const badId = await stream(a!, `token=${await token('dave')}&channel=news`, { 'last-event-id': 'garbage!' });
    expect(badId.status).toBe(400);
  });

  it('keeps a quiet stream open with comments, where a WebSocket client would have to answer pings', { timeout: TIMEOUT }, async () => {
    const s = await stream(a!, `token=${await token('erin')}&channel=quiet`);
    await s.count('subscribed', 1);
    // --ping 1 --pong-timeout 1: a session waiting for a pong would be closed (4103) within this window.
    await sleep(3500);
    expect(s.ended).toBe(false);
    expect(s.comments.length).toBeGreaterThanOrEqual(2);
    expect(s.parsed('disconnect')).toEqual([]);
  });

  it('ends the stream with a disconnect event when the server API disconnects the user', { timeout: TIMEOUT }, async () => {
    const s = await stream(a!, `token=${await token('frank')}&channel=news`);
    await s.count('subscribed', 1);
    const res = await api(b!.url(), 'POST', '/api/disconnect', { user: 'frank' }, KEY);
    expect(res.status).toBe(200);
    const [disconnect] = await s.count('disconnect', 1);
    expect(disconnect).toMatchObject({ type: 'disconnect', code: expect.any(Number) as number });
    await s.waitFor(() => s.ended, 5_000, 'the end of the stream');
  });
});

describe('GET /sse with the subscribe hook', () => {
  it('asks the backend for the channels of namespaces that say so, and streams only what it allows', { timeout: TIMEOUT }, async () => {
    const asked: string[] = [];
    const backend = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const { channel } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { channel: string };
        asked.push(channel);
        const status = channel.startsWith('guarded:deny') ? 403 : 200;
        res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? '{}' : '{"error":{"message":"not a member"}}');
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const hook = `http://127.0.0.1:${(backend.address() as AddressInfo).port}/subscribe`;
    const guarded = { historySize: 10, historyTtl: 60, presence: false, publish: true, private: false, subscribeHook: true, publishHook: false };
    const node = await startNode({ ...TEST_NODE, subscribeHook: hook, hookSecret: 'sse-hook-secret-0123456789', namespaces: { guarded } });
    try {
      const s = await stream(node, 'user=gus&channel=guarded:deny-1&channel=guarded:ok-1&channel=open');
      const [refused] = await s.count('refused', 1);
      expect(refused).toMatchObject({ channel: 'guarded:deny-1', error: { code: 'forbidden' } });
      const subscribed = await s.count('subscribed', 2);
      expect(subscribed.map((e) => e.channel).sort()).toEqual(['guarded:ok-1', 'open']);
      // The namespace without the hook is not asked.
      expect([...asked].sort()).toEqual(['guarded:deny-1', 'guarded:ok-1']);
      await node.publish('guarded:deny-1', { no: 1 });
      const pub = await node.publish('guarded:ok-1', { yes: 1 });
      const [message] = await s.count('message', 1);
      expect(message).toMatchObject({ channel: 'guarded:ok-1', offset: pub.offset });
    } finally {
      await node.close();
      await new Promise((resolve) => backend.close(resolve));
    }
  });
});

describe('GET /sse back-pressure', () => {
  it('closes a stream whose reader does not keep up as a slow consumer (4101), like a WebSocket', { timeout: TIMEOUT }, async () => {
    const node = await startNode({ ...TEST_NODE, limits: { maxBufferedBytes: 64 * 1024 } });
    try {
      const s = await stream(node, 'user=slow&channel=firehose');
      await s.count('subscribed', 1);
      s.res.pause();
      const chunk = 'x'.repeat(32 * 1024);
      // Far more than the socket buffers on loopback: the response's own buffer passes the limit.
      for (let i = 0; i < 400 && !(await closed(node)); i++) await node.publish('firehose', { i, chunk });
      s.res.resume();
      const [disconnect] = await s.count('disconnect', 1, 30_000);
      expect(disconnect).toMatchObject({ code: 4101, reason: 'slow consumer' });
      await s.waitFor(() => s.ended, 5_000, 'the end of the stream');
      expect(s.parsed('message').length).toBeLessThan(400);
    } finally {
      await node.close();
    }
  });
});

describe('GET /sse refused for a while', () => {
  /** A refusal as an `EventSource` gets it: a 200 stream of a `retry:` and one `disconnect` event, which then ends. */
  async function refusedStream(node: SwitchboardNode, query: string): Promise<{ retry: number | undefined; disconnect: Record<string, unknown> }> {
    const s = await stream(node, query);
    expect(s.status).toBe(200);
    expect(s.res.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(s.res.headers['retry-after']).toBeUndefined();
    await s.waitFor(() => s.ended, 5_000, 'the end of the refused stream');
    expect(s.events.map((e) => e.event)).toEqual(['disconnect']);
    return { retry: s.retry, disconnect: s.parsed('disconnect')[0]! };
  }

  /** The same request from a client that does not take an event stream: the JSON refusal. */
  async function jsonRefusal(node: SwitchboardNode, query: string): Promise<{ status: number; retryAfter: string | undefined; body: unknown }> {
    const s = await stream(node, query, { accept: 'application/json' });
    return { status: s.status, retryAfter: s.res.headers['retry-after'] as string | undefined, body: JSON.parse(await s.body()) };
  }

  it('answers an EventSource on a full node (503) with retry: Retry-After and disconnect 4100, others with the JSON 503', { timeout: TIMEOUT }, async () => {
    const node = await startNode({ ...TEST_NODE, limits: { maxConnections: 1 } });
    try {
      const holder = await stream(node, 'user=holder');
      await holder.count('welcome', 1);
      const { retry, disconnect } = await refusedStream(node, 'user=late&channel=news');
      expect(retry).toBe(5000);
      expect(disconnect).toEqual({ type: 'disconnect', code: 4100, reason: 'node is at its connection limit: connect to another node', reconnect: true });
      const json = await jsonRefusal(node, 'user=late&channel=news');
      expect(json).toMatchObject({ status: 503, retryAfter: '5', body: { error: { code: 'unavailable' } } });
      expect(await metric(node.url('/metrics'), 'switchboard_connections_rejected_total', { reason: 'max_connections' })).toBe(2);
      // The holder's stream is untouched.
      expect(holder.ended).toBe(false);
    } finally {
      await node.close();
    }
  });

  it('answers an EventSource past a per-user cap (429) with disconnect 4129, others with the JSON 429; a 401 stays a 401', { timeout: TIMEOUT }, async () => {
    const node = await startNode({ ...TEST_NODE, limits: { maxConnectionsPerUser: 1 } });
    try {
      const first = await stream(node, 'user=once');
      await first.count('welcome', 1);
      const { retry, disconnect } = await refusedStream(node, 'user=once');
      expect(retry).toBe(1000);
      expect(disconnect).toMatchObject({ type: 'disconnect', code: 4129, reconnect: true, reason: expect.stringContaining('too many connections') as string });
      const json = await jsonRefusal(node, 'user=once');
      expect(json).toMatchObject({ status: 429, retryAfter: '1', body: { error: { code: 'rate_limited' } } });
      // Refusals the client must not retry stay what they were, with Accept: text/event-stream too.
      const anonymous = await stream(node, 'channel=news');
      expect(anonymous.status).toBe(401);
      expect(JSON.parse(await anonymous.body())).toMatchObject({ error: { code: 'unauthorized' } });
      const malformed = await stream(node, `user=other&channel=${encodeURIComponent('bad name')}`);
      expect(malformed.status).toBe(400);
    } finally {
      await node.close();
    }
  });

  it('answers an EventSource on a draining node with retry: 1000 and disconnect 4100, others with the JSON 503 without Retry-After', { timeout: TIMEOUT }, async () => {
    // No stream open: the drain keeps the port up for half of --drain-timeout, refusing.
    const node = await startNode({ ...TEST_NODE, drainTimeout: 4 });
    const draining = node.drain();
    try {
      const { retry, disconnect } = await refusedStream(node, 'user=late');
      expect(retry).toBe(1000);
      expect(disconnect).toEqual({ type: 'disconnect', code: 4100, reason: 'node is draining: connect to another node', reconnect: true });
      const json = await jsonRefusal(node, 'user=late');
      expect(json).toMatchObject({ status: 503, retryAfter: undefined, body: { error: { code: 'unavailable' } } });
    } finally {
      await draining;
    }
  });
});

/** Whether the node holds no session any more (the slow stream was closed). */
async function closed(node: SwitchboardNode): Promise<boolean> {
  const { body } = await api(node.url(), 'GET', '/api/users/slow');
  return body.online === false;
}
