/**
 * The server SDK's retry, backoff, timeout and failover rules against a
 * scripted fake HTTP server on loopback: each request gets the next scripted
 * answer, and the server records what arrived and when.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SwitchboardApi, SwitchboardApiError } from '../../src/server-sdk/index.js';
import { freePort } from '../helpers/ports.js';

type Step = (res: ServerResponse) => void;
interface Seen {
  method: string;
  url: string;
  body: Record<string, unknown>;
  auth: string | undefined;
  at: number;
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Step => (res) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};
const unavailable = json(503, { error: { code: 'unavailable', message: 'broker unavailable' } });
/** Never answers: the attempt must time out. */
const hang: Step = () => {};

let server: Server;
let base = '';
let script: Step[] = [];
let seen: Seen[] = [];
const open = new Set<ServerResponse>();

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += String(c)));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
        auth: req.headers.authorization,
        at: Date.now(),
      });
      open.add(res);
      res.on('close', () => open.delete(res));
      const step = script.shift() ?? json(500, { error: { code: 'internal', message: 'script ran out' } });
      step(res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  for (const res of open) res.destroy();
  script = [];
  seen = [];
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const sdk = (extra: Partial<ConstructorParameters<typeof SwitchboardApi>[0]> = {}): SwitchboardApi =>
  new SwitchboardApi({ baseUrl: base, apiKey: 'k', backoffMin: 10, backoffMax: 40, ...extra });

async function rejection(p: Promise<unknown>): Promise<SwitchboardApiError> {
  const err = await p.then(
    () => new Error('resolved'),
    (e: unknown) => e,
  );
  if (!(err instanceof SwitchboardApiError)) throw new Error(`expected a SwitchboardApiError, got ${String(err)}`);
  return err;
}

describe('SwitchboardApi retries', () => {
  it('retries a publish after 503s with one generated idempotency key, and reports a replay', async () => {
    script = [unavailable, unavailable, json(200, { offset: 7, epoch: 'e1' }, { 'idempotent-replayed': 'true' })];
    const receipt = await sdk().publish('room', { n: 1 });
    expect(receipt).toMatchObject({ offset: 7, epoch: 'e1', replayed: true });
    expect(seen).toHaveLength(3);
    const keys = new Set(seen.map((s) => s.body.idempotencyKey));
    expect(keys.size).toBe(1);
    expect(receipt.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
    expect([...keys][0]).toBe(receipt.idempotencyKey);
    expect(seen.every((s) => s.auth === 'Bearer k' && s.method === 'POST' && s.url === '/api/publish')).toBe(true);
    expect(seen[0]?.body).toMatchObject({ channel: 'room', data: { n: 1 } });
  });

  it('keeps the caller’s idempotency key on every attempt', async () => {
    script = [unavailable, json(200, { offset: 1, epoch: 'e' })];
    const receipt = await sdk().send('alice', 'x', { idempotencyKey: 'job-9-step-3' });
    expect(receipt).toMatchObject({ offset: 1, epoch: 'e', replayed: false, idempotencyKey: 'job-9-step-3' });
    expect(seen.map((s) => s.body.idempotencyKey)).toEqual(['job-9-step-3', 'job-9-step-3']);
  });

  it('never retries a 4xx and surfaces its code, status and message', async () => {
    for (const [status, code] of [[400, 'bad_request'], [401, 'unauthorized'], [403, 'forbidden'], [404, 'not_found'], [429, 'rate_limited']] as const) {
      script = [json(status, { error: { code, message: `no: ${code}` } }), json(200, {})];
      const err = await rejection(sdk().publish('room', 1));
      expect(err).toMatchObject({ code, status, message: `no: ${code}`, attempts: 1 });
      expect(seen).toHaveLength(1);
      seen = [];
      script = [];
    }
  });

  it('stops after `retries` retries with the last answer’s error', async () => {
    script = [unavailable, unavailable, unavailable, unavailable];
    const err = await rejection(sdk({ retries: 2 }).history('room'));
    expect(err).toMatchObject({ code: 'unavailable', status: 503, attempts: 3 });
    expect(seen).toHaveLength(3);
  });

  it('maps a proxy’s non-JSON 502 to unavailable and retries it', async () => {
    const proxyPage: Step = (res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>bad gateway</html>');
    };
    script = [proxyPage, json(200, { nodes: [] })];
    expect(await sdk().nodes()).toEqual([]);
    expect(seen).toHaveLength(2);
    script = [proxyPage];
    const err = await rejection(sdk({ retries: 0 }).nodes());
    expect(err).toMatchObject({ code: 'unavailable', status: 502, attempts: 1 });
  });

  it('waits a full-jitter backoff that doubles per retry', async () => {
    script = [unavailable, unavailable, unavailable, json(200, { sessions: 2 })];
    // random ≈ 1: each delay is at the top of its window: 9, 19, 39 ms (min 10, max 40).
    const sessions = await sdk({ random: () => 0.9999 }).disconnect('alice', { code: 4000, reason: 'bye' });
    expect(sessions).toBe(2);
    expect(seen[0]?.body).toEqual({ user: 'alice', code: 4000, reason: 'bye' });
    const gaps = seen.slice(1).map((s, i) => s.at - (seen[i]?.at ?? 0));
    expect(gaps).toHaveLength(3);
    expect(gaps[0]).toBeGreaterThanOrEqual(8);
    expect(gaps[1]).toBeGreaterThanOrEqual(18);
    expect(gaps[2]).toBeGreaterThanOrEqual(38);
  });

  it('bounds each attempt by `timeout` and the call by `deadline`', async () => {
    script = [hang, hang, hang, hang, hang, hang, hang, hang, hang, hang];
    const started = Date.now();
    const err = await rejection(sdk({ timeout: 150, deadline: 500, retries: 100 }).publish('room', 1));
    const took = Date.now() - started;
    expect(err).toMatchObject({ code: 'unavailable', status: 0 });
    expect(err.message).toMatch(/timed out/);
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(900);
    expect(err.attempts).toBeGreaterThanOrEqual(2);
    expect(err.attempts).toBeLessThanOrEqual(4);
    expect(new Set(seen.map((s) => s.body.idempotencyKey)).size).toBe(1);
  });

  it('fails over from a dead base URL to a live one and starts there next time', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const api = sdk({ baseUrl: [dead, base] });
    script = [json(200, { user: 'bob', node: 'n1', url: 'ws://x/ws' })];
    expect(await api.route('bob')).toEqual({ user: 'bob', node: 'n1', url: 'ws://x/ws' });
    expect(seen.map((s) => s.url)).toEqual(['/api/route?user=bob']);
    expect(api.baseUrl).toBe(base);
    script = [json(200, { online: false, sessions: [] })];
    expect(await api.user('bob')).toEqual({ online: false, sessions: [] });
    expect(seen).toHaveLength(2);
  });

  it('rejects at once with the caller’s abort reason', async () => {
    script = [hang];
    const ctrl = new AbortController();
    const call = sdk({ timeout: 5000 }).presence('room', { signal: ctrl.signal });
    setTimeout(() => ctrl.abort(new Error('caller gave up')), 50);
    const started = Date.now();
    await expect(call).rejects.toThrow('caller gave up');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('checks answers: a 200 without the promised fields is an internal error', async () => {
    script = [json(200, { online: 'yes' })];
    const err = await rejection(sdk().user('bob'));
    expect(err.code).toBe('internal');
  });

  it('refuses bad options at once', () => {
    expect(() => new SwitchboardApi({ baseUrl: [] })).toThrow(TypeError);
    expect(() => new SwitchboardApi({ baseUrl: 'ftp://x' })).toThrow(TypeError);
    expect(() => new SwitchboardApi({ baseUrl: base, timeout: -1 })).toThrow(TypeError);
  });
});
