/**
 * Cookie sessions through the connect hook, and their refresh, on two node
 * processes over a real redis-server, against a backend started here that
 * checks every request's signature with the server SDK. The backend knows
 * sessions by a `sid` cookie: a user from the backend on either node, with
 * the private channel its answer grants; its 401 and 403 refuse the upgrade
 * with that status; a backend that answers nonsense, is slower than
 * `--hook-timeout` or is down refuses with 503 while open connections go on;
 * a valid token never reaches the hook, an invalid one does. Refresh: the
 * refresh hook extends a session, then its 403 closes it with 4105; a node
 * without a refresh hook closes such a session at `expireAt` with 4105.
 */
import http from 'node:http';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerFrame } from '../../src/protocol/index.js';
import { parseConnectRequest, parseRefreshRequest, WebhookError, type ConnectHookRequest, type RefreshHookRequest } from '../../src/server-sdk/index.js';
import { metric } from '../helpers/metrics.js';
import { startNodeProcess, writeConfig, type NodeProcess } from '../helpers/node-process.js';
import { TestBackend } from '../helpers/test-backend.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';

const HOOK_SECRET = 'connect-cluster-hook-secret';
const JWT_SECRET = 'connect-cluster-jwt-secret-0123456789';
const TIMEOUT_MS = 400;
const nowS = (): number => Math.floor(Date.now() / 1000);

let redis: RedisProcess;
let port = 0;
const connects: ConnectHookRequest[] = [];
const refreshes: RefreshHookRequest[] = [];
/** Requests whose signature did not check (none expected). */
let unsigned = 0;
/** Refresh answers by user, taken in turn: a number is seconds more to live, else the status to answer. */
const refreshPlan = new Map<string, Array<number | 403>>();
const nodes: NodeProcess[] = [];
const clients: RawClient[] = [];

/** The backend's sessions: cookie `sid` → what the connect hook answers (or its status). */
function connectAnswer(req: ConnectHookRequest): { status: number; body?: unknown; delayMs?: number } {
  const sid = /(?:^|;\s*)sid=([^;]*)/.exec(req.headers.cookie ?? '')?.[1];
  if (req.headers.authorization === 'Bearer opaque-api-key') return { status: 200, body: { user: 'api-client' } };
  switch (sid) {
    case 'alice-sid':
      return { status: 200, body: { user: 'alice', channels: ['vip:*'], meta: { sid, plan: 'gold' } } };
    case 'banned-sid':
      return { status: 403, body: { error: { message: 'banned' } } };
    case 'nonsense-sid':
      return { status: 200, body: { user: 'not a user id' } };
    case 'slow-sid':
      return { status: 200, body: { user: 'slow' }, delayMs: TIMEOUT_MS * 4 };
    case 'short-sid':
      return { status: 200, body: { user: 'short', expireAt: nowS() + 4, meta: { sid } } };
    default:
      return { status: 401, body: { error: { message: 'not logged in' } } };
  }
}

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body ?? {}));
    try {
      if (req.url === '/connect') {
        const hello = parseConnectRequest(raw, req.headers['x-switchboard-signature'], HOOK_SECRET);
        connects.push(hello);
        const answer = connectAnswer(hello);
        setTimeout(() => json(answer.status, answer.body), answer.delayMs ?? 0);
        return;
      }
      const refresh = parseRefreshRequest(raw, req.headers['x-switchboard-signature'], HOOK_SECRET);
      refreshes.push(refresh);
      const next = refreshPlan.get(refresh.user)?.shift();
      if (next === undefined) return json(503, {});
      if (next === 403) return json(403, {});
      json(200, { expireAt: nowS() + next });
    } catch (err) {
      if (err instanceof WebhookError && err.reason === 'signature') unsigned++;
      json(400, {});
    }
  });
}

const backend = new TestBackend(handle);

async function listen(at: number): Promise<void> {
  port = await backend.listen(at);
}

const stopBackend = (): Promise<void> => backend.stop();

function hookArgs(refresh: boolean): string[] {
  // The clients below say they come from a page of http://app.test.
  const args = ['--broker', redis.url, '--secret', JWT_SECRET, '--connect-hook', `http://127.0.0.1:${port}/connect`, '--hook-timeout', String(TIMEOUT_MS), '--allowed-origins', 'http://app.test'];
  if (refresh) args.push('--refresh-hook', `http://127.0.0.1:${port}/refresh`);
  return [...args, '--config', writeConfig({ namespaces: { vip: { private: true, publish: true }, room: { publish: true } } })];
}

async function connect(node: NodeProcess, headers: Record<string, string>, query = ''): Promise<RawClient> {
  const client = await RawClient.connect(node.ws(query), { headers });
  clients.push(client);
  return client;
}

/** The HTTP status an upgrade is refused with (a failure of the test when it is accepted). */
async function refusedWith(node: NodeProcess, headers: Record<string, string>): Promise<number> {
  try {
    clients.push(await RawClient.open(node.ws(), { headers }));
  } catch (err) {
    return (err as { status: number }).status;
  }
  throw new Error('the upgrade was accepted');
}

const isDisconnect = (f: ServerFrame): boolean => f.type === 'disconnect';

beforeAll(async () => {
  redis = await startRedis();
  await listen(0);
  for (const id of ['hook-a', 'hook-b']) nodes.push(await startNodeProcess(id, hookArgs(true), { SWITCHBOARD_HOOK_SECRET: HOOK_SECRET }));
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.stop()));
  await stopBackend().catch(() => undefined);
  await redis?.stop();
});

describe('cookie sessions through the connect hook, on two nodes over Redis', () => {
  it('opens a session for the user the backend names, on either node, with the channels it grants', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const onA = await connect(a, { cookie: 'theme=dark; sid=alice-sid', origin: 'http://app.test', 'user-agent': 'test-agent/1' }, 'device=phone');
    const onB = await connect(b, { cookie: 'sid=alice-sid' });
    for (const c of [onA, onB]) expect(c.welcome).toMatchObject({ user: 'alice', channel: 'user:alice' });
    expect(onA.welcome.expires).toBeUndefined();
    expect(connects[0]).toEqual({
      ip: '127.0.0.1',
      headers: { cookie: 'theme=dark; sid=alice-sid', origin: 'http://app.test', 'user-agent': 'test-agent/1' },
      query: { device: 'phone' },
    });
    // The grant of the hook's answer opens the private namespace vip on both nodes.
    expect(await onA.request({ type: 'subscribe', channel: 'vip:lounge' })).toMatchObject({ result: {} });
    expect(await onB.request({ type: 'subscribe', channel: 'vipx:lounge' })).toMatchObject({ result: {} });
    expect(await onB.request({ type: 'subscribe', channel: 'vip:other' })).toMatchObject({ result: {} });
    expect(await onB.request({ type: 'publish', channel: 'vip:lounge', data: 'across' })).toMatchObject({ result: {} });
    expect(await onA.next((f) => f.type === 'message' && f.channel === 'vip:lounge')).toMatchObject({ data: 'across', from: 'alice' });
    expect(unsigned).toBe(0);
  });

  it("keeps the backend's private grants: a user without them is refused the channel", async () => {
    const [a] = nodes as [NodeProcess];
    const api = await connect(a, { authorization: 'Bearer opaque-api-key' });
    expect(api.welcome.user).toBe('api-client');
    expect(await api.request({ type: 'subscribe', channel: 'vip:lounge' })).toMatchObject({ error: { code: 'forbidden' } });
  });

  it('refuses the upgrade with the backend’s 401 or 403, and with 503 for an answer that makes no sense', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    expect(await refusedWith(a, {})).toBe(401);
    expect(await refusedWith(b, { cookie: 'sid=stranger' })).toBe(401);
    expect(await refusedWith(a, { cookie: 'sid=banned-sid' })).toBe(403);
    expect(await refusedWith(b, { cookie: 'sid=nonsense-sid' })).toBe(503);
  });

  it('a valid token never reaches the hook; an invalid one does, with its authorization header', async () => {
    const [a] = nodes as [NodeProcess];
    const before = connects.length;
    const token = await new SignJWT({ sub: 'jwt-user', exp: nowS() + 600 })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(JWT_SECRET));
    expect((await connect(a, { authorization: `Bearer ${token}` })).welcome.user).toBe('jwt-user');
    expect(connects.length).toBe(before);
    expect(await refusedWith(a, { authorization: 'Bearer not-a-jwt' })).toBe(401);
    expect(connects.at(-1)?.headers.authorization).toBe('Bearer not-a-jwt');
  });

  it('a backend slower than --hook-timeout, then one that is down, refuse with 503; open connections go on', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const reader = await connect(b, { cookie: 'sid=alice-sid' });
    await reader.request({ type: 'subscribe', channel: 'room:hook-down' });
    const writer = await connect(a, { cookie: 'sid=alice-sid' });
    const started = Date.now();
    const slow = refusedWith(a, { cookie: 'sid=slow-sid' });
    expect(await writer.request({ type: 'publish', channel: 'room:hook-down', data: 'during slow' })).toMatchObject({ result: {} });
    expect(await slow).toBe(503);
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1500);

    await stopBackend();
    try {
      expect(await refusedWith(a, { cookie: 'sid=alice-sid' })).toBe(503);
      expect(await refusedWith(b, { cookie: 'sid=alice-sid' })).toBe(503);
      expect(await writer.request({ type: 'publish', channel: 'room:hook-down', data: 'backend down' })).toMatchObject({ result: {} });
      await reader.waitFor((f) => f.type === 'message' && f.channel === 'room:hook-down', 2, 5000);
      expect(reader.messages('room:hook-down').map((m) => m.data)).toEqual(['during slow', 'backend down']);
    } finally {
      await listen(port);
    }
    expect((await connect(a, { cookie: 'sid=alice-sid' })).welcome.user).toBe('alice');
  });
});

describe('the refresh hook', () => {
  it('extends a session before its expireAt, then closes it with 4105 when the backend answers 403', async () => {
    const [a] = nodes as [NodeProcess];
    refreshPlan.set('short', [8, 403]);
    const opened = nowS();
    const c = await connect(a, { cookie: 'sid=short-sid' });
    const firstExpiry = c.welcome.expires!;
    expect(firstExpiry).toBeGreaterThanOrEqual(opened + 3);
    // Past the first expireAt the session lives on: the refresh hook extended it.
    await new Promise((r) => setTimeout(r, (firstExpiry - Date.now() / 1000) * 1000 + 1000));
    expect(c.frames.some(isDisconnect)).toBe(false);
    expect(refreshes[0]).toEqual({ user: 'short', session: c.welcome.session, meta: { sid: 'short-sid' } });
    // The second refresh (halfway through the 8 s granted) is refused: closed at once, before the extended expiry.
    expect(await c.next(isDisconnect, 6000)).toMatchObject({ code: 4105, reconnect: true });
    expect((await c.closed).code).toBe(4105);
    expect(refreshes).toHaveLength(2);
    expect(Date.now() / 1000).toBeLessThan(firstExpiry + 6);
  }, 20_000);

  it('without a refresh hook, a node closes the session at expireAt with 4105', async () => {
    const lone = await startNodeProcess('hook-c', hookArgs(false), { SWITCHBOARD_HOOK_SECRET: HOOK_SECRET });
    nodes.push(lone);
    const asked = refreshes.length;
    const c = await connect(lone, { cookie: 'sid=short-sid' });
    const expires = c.welcome.expires!;
    expect(await c.next(isDisconnect, 8000)).toMatchObject({ code: 4105, reason: 'session expired: reconnect', reconnect: true });
    const late = Date.now() / 1000 - expires;
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThan(2);
    expect(refreshes).toHaveLength(asked);
  }, 30_000);

  it('counts hook requests by hook and outcome, and refusals by reason; every hook label starts at zero', async () => {
    const [a, , lone] = nodes as [NodeProcess, NodeProcess, NodeProcess];
    const metrics = a.url('/metrics');
    expect(await metric(metrics, 'switchboard_hook_requests_total', { hook: 'connect', outcome: 'ok' })).toBeGreaterThanOrEqual(4);
    expect(await metric(metrics, 'switchboard_hook_requests_total', { hook: 'connect', outcome: 'unauthorized' })).toBeGreaterThanOrEqual(2);
    expect(await metric(metrics, 'switchboard_hook_requests_total', { hook: 'refresh', outcome: 'ok' })).toBe(1);
    expect(await metric(metrics, 'switchboard_hook_requests_total', { hook: 'refresh', outcome: 'forbidden' })).toBe(1);
    expect(await metric(metrics, 'switchboard_connections_rejected_total', { reason: 'forbidden' })).toBe(1);
    expect(await metric(metrics, 'switchboard_connections_rejected_total', { reason: 'connect_hook' })).toBe(2);
    // A node that never refreshed anything lists the refresh hook's series all the same, at zero.
    const text = await (await fetch(lone.url('/metrics'))).text();
    expect(text).toMatch(/^switchboard_hook_requests_total\{[^}]*hook="refresh"[^}]*outcome="ok"[^}]*\} 0$/m);
    expect(text).toMatch(/^switchboard_hook_duration_seconds_count\{[^}]*hook="refresh"[^}]*\} 0$/m);
  });
});
