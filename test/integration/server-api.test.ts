/** The server API, health, readiness and metrics of one node over real HTTP. */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { api } from '../helpers/api.js';
import { RawClient } from '../helpers/raw-client.js';

let n: SwitchboardNode;
const clients: RawClient[] = [];

beforeAll(async () => {
  n = await startNode({
    port: 0,
    host: '127.0.0.1',
    insecure: true,
    logLevel: 'silent',
    apiKeys: ['test-key', 'second-key'],
    limits: { maxBodyBytes: 4096 },
    namespaces: { volatile: { historySize: 0, historyTtl: 0, presence: false, publish: true, private: false } },
  });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await n.close();
});

async function connect(user: string): Promise<RawClient> {
  const c = await RawClient.connect(`ws://127.0.0.1:${n.port}/ws?user=${user}`);
  clients.push(c);
  return c;
}

describe('API keys', () => {
  it('refuses calls without a key or with a wrong one (401, JSON error), and accepts every configured key', async () => {
    expect(await api(n.url(), 'GET', '/api/nodes', undefined, null)).toMatchObject({
      status: 401,
      body: { error: { code: 'unauthorized' } },
    });
    expect(await api(n.url(), 'GET', '/api/nodes', undefined, 'wrong')).toMatchObject({ status: 401 });
    expect((await api(n.url(), 'GET', '/api/nodes', undefined, 'test-key')).status).toBe(200);
    expect((await api(n.url(), 'GET', '/api/nodes', undefined, 'second-key')).status).toBe(200);
  });

  it('opens the API without a key only on an insecure node with no key configured', async () => {
    const open = await startNode({ port: 0, host: '127.0.0.1', insecure: true, logLevel: 'silent' });
    const closed = await startNode({ port: 0, host: '127.0.0.1', secret: 's3cret-s3cret', logLevel: 'silent' });
    try {
      expect((await api(open.url(), 'GET', '/api/nodes', undefined, null)).status).toBe(200);
      expect(await api(closed.url(), 'GET', '/api/nodes', undefined, null)).toMatchObject({
        status: 401,
        body: { error: { code: 'unauthorized', message: expect.stringContaining('--api-key') } },
      });
    } finally {
      await open.close();
      await closed.close();
    }
  });
});

describe('publishing', () => {
  it('publish, send and broadcast reach subscribers and return offsets', async () => {
    const c = await connect('uma');
    await c.request({ type: 'subscribe', channel: 'b1' });
    await c.request({ type: 'subscribe', channel: 'b2' });
    const p = await api(n.url(), 'POST', '/api/publish', { channel: 'b1', data: { x: 1 } });
    expect(p).toMatchObject({ status: 200, body: { offset: 1, epoch: expect.any(String) } });
    const s = await api(n.url(), 'POST', '/api/send', { user: 'uma', data: 'hi' });
    expect(s).toMatchObject({ status: 200, body: { offset: 1 } });
    const b = await api(n.url(), 'POST', '/api/broadcast', { channels: ['b1', 'b2'], data: 'all' });
    expect(b).toMatchObject({ status: 200, body: { results: [{ offset: 2 }, { offset: 1 }] } });
    await c.waitFor((f) => f.type === 'message', 4);
    expect(c.messages().map((m) => [m.channel, m.data])).toEqual([
      ['b1', { x: 1 }],
      ['user:uma', 'hi'],
      ['b1', 'all'],
      ['b2', 'all'],
    ]);
    expect(c.messages().every((m) => m.from === undefined)).toBe(true);
  });

  it('publishes without offsets on a namespace without history', async () => {
    const c = await connect('vic');
    await c.request({ type: 'subscribe', channel: 'volatile:x' });
    expect(await api(n.url(), 'POST', '/api/publish', { channel: 'volatile:x', data: 1 })).toEqual({ status: 200, body: {} });
    expect(await c.next((f) => f.type === 'message')).toEqual({ type: 'message', channel: 'volatile:x', data: 1 });
    expect(await api(n.url(), 'GET', '/api/history/volatile:x')).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
  });

  it('answers bad input with 400 bad_request, oversized bodies with 413, unknown paths with 404, wrong methods with 405', async () => {
    const bad: Array<[string, string, unknown]> = [
      ['POST', '/api/publish', '{broken'],
      ['POST', '/api/publish', '[1,2]'],
      ['POST', '/api/publish', { channel: 'has space', data: 1 }],
      ['POST', '/api/publish', { channel: 'ok' }],
      ['POST', '/api/send', { user: '', data: 1 }],
      ['POST', '/api/broadcast', { channels: [], data: 1 }],
      ['POST', '/api/broadcast', { channels: ['ok', 'bad channel'], data: 1 }],
      ['POST', '/api/disconnect', { user: 'x', code: 1000 }],
      ['GET', '/api/history/feed?since=-1', undefined],
    ];
    for (const [method, path, body] of bad) {
      expect(await api(n.url(), method, path, body), `${method} ${path} ${JSON.stringify(body)}`).toMatchObject({
        status: 400,
        body: { error: { code: 'bad_request', message: expect.any(String) } },
      });
    }
    expect(await api(n.url(), 'POST', '/api/publish', { channel: 'x', data: 'y'.repeat(5000) })).toMatchObject({
      status: 413,
      body: { error: { code: 'too_large' } },
    });
    expect(await api(n.url(), 'GET', '/api/nope')).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    expect((await api(n.url(), 'GET', '/api/publish')).status).toBe(405);
  });
});

describe('queries', () => {
  it('users, presence, history and nodes answer for this node', async () => {
    const w = await connect('walt');
    await w.request({ type: 'subscribe', channel: 'lobby' });
    const user = await api(n.url(), 'GET', '/api/users/walt');
    expect(user.body).toEqual({ online: true, sessions: [{ session: w.welcome.session, node: n.id }] });
    expect((await api(n.url(), 'GET', '/api/users/nobody')).body).toEqual({ online: false, sessions: [] });
    expect((await api(n.url(), 'GET', '/api/presence/lobby')).body).toEqual({
      members: [{ user: 'walt', session: w.welcome.session, node: n.id }],
    });
    for (let i = 1; i <= 5; i++) await api(n.url(), 'POST', '/api/publish', { channel: 'lobby', data: i });
    const h = await api(n.url(), 'GET', '/api/history/lobby?since=2&limit=2');
    expect(h.body).toMatchObject({ offset: 5, epoch: expect.any(String) });
    expect((h.body.messages as Array<{ data: number; offset: number }>).map((m) => [m.offset, m.data])).toEqual([
      [3, 3],
      [4, 4],
    ]);
    const nodes = await api(n.url(), 'GET', '/api/nodes');
    expect(nodes.body.nodes).toEqual([
      expect.objectContaining({ id: n.id, address: `http://127.0.0.1:${n.port}`, connections: expect.any(Number), uptime: expect.any(Number) }),
    ]);
    await w.close();
    await vi.waitUntil(async () => (await api(n.url(), 'GET', '/api/users/walt')).body.online === false, { timeout: 5_000, interval: 20 });
    expect((await api(n.url(), 'GET', '/api/users/walt')).body).toEqual({ online: false, sessions: [] });
    expect((await api(n.url(), 'GET', '/api/presence/lobby')).body).toEqual({ members: [] });
  });

  it('disconnects every session of a user with the given code', async () => {
    const a = await connect('xena');
    const b = await connect('xena');
    const r = await api(n.url(), 'POST', '/api/disconnect', { user: 'xena', reason: 'banned' });
    expect(r.body).toEqual({ sessions: 2 });
    for (const c of [a, b]) {
      expect(await c.closed).toEqual({ code: 4000, reason: 'banned' });
      expect(c.frames.at(-1)).toEqual({ type: 'disconnect', code: 4000, reason: 'banned', reconnect: false });
    }
  });
});

describe('health, readiness, metrics', () => {
  it('serves /healthz, /readyz and Prometheus metrics with the switchboard_ prefix', async () => {
    expect((await fetch(n.url('/healthz'))).status).toBe(200);
    expect((await fetch(n.url('/readyz'))).status).toBe(200);
    const c = await connect('yuri');
    await c.request({ type: 'subscribe', channel: 'm' });
    await api(n.url(), 'POST', '/api/publish', { channel: 'm', data: 1 });
    await c.next((f) => f.type === 'message');
    const text = await (await fetch(n.url('/metrics'))).text();
    for (const name of [
      'switchboard_connections',
      'switchboard_subscriptions',
      'switchboard_messages_in_total',
      'switchboard_messages_out_total',
      'switchboard_publications_total',
      'switchboard_delivery_latency_seconds_bucket',
      'switchboard_process_cpu_seconds_total',
    ]) {
      expect(text, name).toMatch(new RegExp(`^${name}[{ ]`, 'm'));
    }
    const connections = Number(/^switchboard_connections\{[^}]*\} (\d+)/m.exec(text)?.[1]);
    expect(connections).toBeGreaterThanOrEqual(1);
    const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(lines.every((l) => l.startsWith('switchboard_'))).toBe(true);
  });

  it('reports 503 on /readyz while draining, until the clients are gone', async () => {
    const d = await startNode({ port: 0, host: '127.0.0.1', insecure: true, logLevel: 'silent', drainTimeout: 2 });
    const c = await RawClient.connect(`ws://127.0.0.1:${d.port}/ws?user=zed`);
    // A client that stops reading never completes the close handshake, so the drain waits for it.
    (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const started = Date.now();
    const draining = d.drain();
    await vi.waitUntil(async () => (await fetch(d.url('/readyz'))).status === 503, { timeout: 5_000, interval: 20 });
    const ready = await fetch(d.url('/readyz'));
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'draining' });
    expect((await fetch(d.url('/healthz'))).status).toBe(200);
    await expect(RawClient.open(`ws://127.0.0.1:${d.port}/ws?user=late`)).rejects.toMatchObject({ status: 503 });
    await draining;
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    await expect(fetch(d.url('/readyz'))).rejects.toBeDefined();
  });
});
