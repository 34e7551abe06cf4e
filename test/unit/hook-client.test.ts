/**
 * The backend hook client and the rpc hook against a real HTTP server on
 * localhost that each test scripts: signatures the server SDK verifies,
 * 4xx answers mapped to error codes, and every failure (5xx, timeout,
 * nonsense, down, too many in flight) ending in `unavailable`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SwitchboardError } from '../../src/protocol/index.js';
import { HookClient, MAX_HOOK_ANSWER_BYTES } from '../../src/server/hooks/client.js';
import { RpcHook } from '../../src/server/hooks/rpc.js';
import { Metrics } from '../../src/server/metrics.js';
import { verifyWebhook } from '../../src/server-sdk/index.js';

const SECRET = 'hook-test-secret';

type Handler = (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void;

const servers: http.Server[] = [];
const clients: HookClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A backend on a free port; resolves with its URL. */
async function backend(handle: Handler): Promise<string> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, Buffer.concat(chunks).toString('utf8'), res));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
}

function answer(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body);
}

function client(options: Partial<{ timeoutMs: number; maxInFlight: number; secret: string }> = {}): { hooks: HookClient; metrics: Metrics } {
  const metrics = new Metrics({ node: 'hooks' });
  const hooks = new HookClient({ secret: SECRET, timeoutMs: 1000, maxInFlight: 16, ...options }, metrics);
  clients.push(hooks);
  return { hooks, metrics };
}

/** The code of the `SwitchboardError` a promise rejects with. */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SwitchboardError);
    return (err as SwitchboardError).code;
  }
  throw new Error('expected a rejection');
}

async function outcomes(metrics: Metrics): Promise<Record<string, number>> {
  const got = await metrics.hookRequests.get();
  return Object.fromEntries(got.values.filter((v) => v.value > 0).map((v) => [`${v.labels.hook}:${v.labels.outcome}`, v.value]));
}

describe('HookClient', () => {
  it('POSTs signed JSON that verifyWebhook accepts, and returns the answer', async () => {
    const seen: Array<{ body: string; signature: string | string[] | undefined; type: string | undefined }> = [];
    const url = await backend((req, body, res) => {
      seen.push({ body, signature: req.headers['x-switchboard-signature'], type: req.headers['content-type'] });
      answer(res, 200, JSON.stringify({ data: { echoed: JSON.parse(body) } }));
    });
    const { hooks, metrics } = client();
    const got = await hooks.call('rpc', url, { user: 'u1', n: 1 });
    expect(got).toEqual({ data: { echoed: { user: 'u1', n: 1 } } });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.type).toBe('application/json');
    expect(verifyWebhook(seen[0]!.body, seen[0]!.signature, SECRET)).toBe(true);
    expect(verifyWebhook(seen[0]!.body, seen[0]!.signature, 'another-secret')).toBe(false);
    expect(await outcomes(metrics)).toEqual({ 'rpc:ok': 1 });
    expect((await metrics.hookDuration.get()).values.find((v) => v.metricName?.endsWith('_count') && v.labels.hook === 'rpc')?.value).toBe(1);
  });

  it('maps 4xx answers to their codes, other 4xx to bad_request, and passes the backend message on', async () => {
    const url = await backend((req, _body, res) => {
      const status = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('status'));
      answer(res, status, status === 403 ? JSON.stringify({ error: { message: 'not your order' } }) : '{}');
    });
    const { hooks, metrics } = client();
    const expected: Record<number, string> = {
      400: 'bad_request',
      401: 'unauthorized',
      403: 'forbidden',
      404: 'not_found',
      413: 'too_large',
      429: 'rate_limited',
      409: 'bad_request',
      418: 'bad_request',
    };
    for (const [status, code] of Object.entries(expected)) {
      expect(await codeOf(hooks.call('rpc', `${url}?status=${status}`, {})), `status ${status}`).toBe(code);
    }
    await expect(hooks.call('rpc', `${url}?status=403`, {})).rejects.toThrow('not your order');
    expect((await outcomes(metrics))['rpc:forbidden']).toBe(2);
  });

  it('answers unavailable for 5xx, a body that is not a JSON object, and an answer over the size cap', async () => {
    const url = await backend((req, _body, res) => {
      const kind = new URL(req.url ?? '/', 'http://x').searchParams.get('kind');
      if (kind === '500') return answer(res, 500, '{"data":1}');
      if (kind === '302') return answer(res, 302, '{"data":1}');
      if (kind === 'text') return answer(res, 200, 'hello');
      if (kind === 'array') return answer(res, 200, '[1,2]');
      if (kind === 'huge') return answer(res, 200, JSON.stringify({ data: 'x'.repeat(MAX_HOOK_ANSWER_BYTES) }));
      answer(res, 200, '');
    });
    const { hooks, metrics } = client();
    for (const kind of ['500', '302', 'text', 'array', 'huge', 'empty']) {
      expect(await codeOf(hooks.call('rpc', `${url}?kind=${kind}`, {})), kind).toBe('unavailable');
    }
    expect(await outcomes(metrics)).toEqual({ 'rpc:unavailable': 6 });
  });

  it('answers unavailable when the backend is down', async () => {
    const url = await backend((_req, _body, res) => answer(res, 200, '{}'));
    const down = servers.pop()!;
    await new Promise((r) => down.close(r));
    const { hooks } = client();
    expect(await codeOf(hooks.call('rpc', url, {}))).toBe('unavailable');
  });

  it('gives up on a slow backend after the timeout', async () => {
    const url = await backend((_req, _body, res) => setTimeout(() => answer(res, 200, '{"data":1}'), 2000));
    const { hooks } = client({ timeoutMs: 200 });
    const started = Date.now();
    await expect(hooks.call('rpc', url, {})).rejects.toThrow(/no answer within 200 ms/);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1500);
    expect(hooks.pending).toBe(0);
  });

  it('refuses at once past the in-flight bound, counted as busy, and serves again once requests return', async () => {
    const held: http.ServerResponse[] = [];
    const url = await backend((_req, _body, res) => held.push(res));
    const { hooks, metrics } = client({ maxInFlight: 2 });
    const first = hooks.call('rpc', url, {});
    const second = hooks.call('rpc', url, {});
    expect(hooks.pending).toBe(2);
    const started = Date.now();
    expect(await codeOf(hooks.call('rpc', url, {}))).toBe('unavailable');
    expect(Date.now() - started).toBeLessThan(100);
    for (let i = 0; i < 100 && held.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    for (const res of held.splice(0)) answer(res, 200, '{"data":"late"}');
    await expect(first).resolves.toEqual({ data: 'late' });
    await expect(second).resolves.toEqual({ data: 'late' });
    const third = hooks.call('rpc', url, {});
    for (let i = 0; i < 100 && held.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
    answer(held[0]!, 200, '{"data":3}');
    await expect(third).resolves.toEqual({ data: 3 });
    expect(await outcomes(metrics)).toEqual({ 'rpc:busy': 1, 'rpc:ok': 3 });
  });
});

describe('RpcHook', () => {
  it('posts {user, session, method, data} and returns the answer data', async () => {
    const bodies: unknown[] = [];
    const url = await backend((_req, body, res) => {
      bodies.push(JSON.parse(body));
      answer(res, 200, JSON.stringify({ data: null }));
    });
    const rpc = new RpcHook(client().hooks, url);
    await expect(rpc.call('alice', 's1', 'orders.get', { id: 7 })).resolves.toBeNull();
    expect(bodies).toEqual([{ user: 'alice', session: 's1', method: 'orders.get', data: { id: 7 } }]);
  });

  it('answers unavailable for an answer without data, and not_found without a URL', async () => {
    const url = await backend((_req, _body, res) => answer(res, 200, '{"result":1}'));
    expect(await codeOf(new RpcHook(client().hooks, url).call('u', 's', 'm', 1))).toBe('unavailable');
    await expect(new RpcHook(client().hooks, undefined).call('u', 's', 'm', 1)).rejects.toThrow('no rpc hook configured');
  });
});
