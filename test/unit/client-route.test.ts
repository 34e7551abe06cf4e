/**
 * `routeResolver`: asks `GET /api/route?user=` for the owner node's
 * WebSocket URL — against a real HTTP server with the global `fetch`, and
 * against scripted `fetch`es for the failure cases.
 */
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { routeResolver, SwitchboardClient } from '../../src/client/index.js';
import { FakeServer } from './client-fake-server.js';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A real HTTP server answering every request with `answer(path)`; returns its base URL and the paths asked. */
async function routeApi(answer: (path: string) => { status: number; body: string }): Promise<{ base: string; paths: string[] }> {
  const paths: string[] = [];
  const http: Server = createServer((req, res) => {
    paths.push(req.url ?? '');
    const { status, body } = answer(req.url ?? '');
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => http.close(() => resolve())));
  const address = http.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { base: `http://127.0.0.1:${port}`, paths };
}

/** A `fetch` that answers every call with `status` and `body`, recording the calls. */
function fakeFetch(status: number, body: string, calls: Array<{ url: string; init?: RequestInit }> = []): typeof fetch {
  return (async (url: string, init?: RequestInit) => {
    calls.push({ url, ...(init ? { init } : {}) });
    return new Response(body, { status, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
}

describe('routeResolver', () => {
  it('asks GET <apiBase>/api/route?user= and resolves the answer url (real HTTP, global fetch)', async () => {
    const api = await routeApi(() => ({ status: 200, body: JSON.stringify({ user: 'al.ice@x', node: 'n2', url: 'ws://127.0.0.1:8081/ws' }) }));
    await expect(routeResolver(api.base, 'al.ice@x')()).resolves.toBe('ws://127.0.0.1:8081/ws');
    await expect(routeResolver(`${api.base}/edge/`, 'bob')()).resolves.toBe('ws://127.0.0.1:8081/ws');
    expect(api.paths).toEqual(['/api/route?user=al.ice%40x', '/edge/api/route?user=bob']);
  });

  it('sends extra headers and an abort signal', async () => {
    const calls: Array<{ url: string; init?: RequestInit }> = [];
    const resolve = routeResolver('https://api.example/', 'bob', {
      fetch: fakeFetch(200, JSON.stringify({ url: 'wss://n3.example/ws' }), calls),
      headers: { authorization: 'Bearer k' },
    });
    await expect(resolve()).resolves.toBe('wss://n3.example/ws');
    expect(calls[0]?.url).toBe('https://api.example/api/route?user=bob');
    expect(calls[0]?.init?.headers).toMatchObject({ authorization: 'Bearer k', accept: 'application/json' });
    expect(calls[0]?.init?.signal).toBeInstanceOf(AbortSignal);
  });

  it('rejects a non-2xx status, a body that is not JSON, and an answer without a ws:/wss: url', async () => {
    const resolve = (status: number, body: string) => routeResolver('http://api', 'bob', { fetch: fakeFetch(status, body) })();
    await expect(resolve(503, '{"error":{"code":"unavailable"}}')).rejects.toThrow(/HTTP 503/);
    await expect(resolve(200, 'not json')).rejects.toThrow();
    await expect(resolve(200, 'null')).rejects.toThrow(/ws:\/wss:/);
    await expect(resolve(200, '{"user":"bob","node":"n1"}')).rejects.toThrow(/ws:\/wss:/);
    await expect(resolve(200, '{"url":42}')).rejects.toThrow(/ws:\/wss:/);
    await expect(resolve(200, '{"url":"http://n1/ws"}')).rejects.toThrow(/ws:\/wss:/);
    await expect(resolve(200, '{"url":"/ws"}')).rejects.toThrow(/ws:\/wss:/);
  });

  it('refuses a ws: answer to an https: API (no downgrade), takes wss: and, from http:, ws:', async () => {
    const resolve = (base: string, body: string) => routeResolver(base, 'bob', { fetch: fakeFetch(200, body) })();
    await expect(resolve('https://api', '{"url":"ws://n1/ws"}')).rejects.toThrow(/from wss: to ws:/);
    await expect(resolve('https://api', '{"url":"wss://n1/ws"}')).resolves.toBe('wss://n1/ws');
    await expect(resolve('http://api', '{"url":"ws://n1/ws"}')).resolves.toBe('ws://n1/ws');
  });

  it('rejects after timeoutMs when the API does not answer', async () => {
    const hanging = ((_url: string, init?: RequestInit) =>
      new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(new Error('aborted'))))) as typeof fetch;
    const t0 = Date.now();
    await expect(routeResolver('http://api', 'bob', { fetch: hanging, timeoutMs: 50 })()).rejects.toThrow(/timed out after 50 ms/);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('throws at once for a bad user id, apiBase or timeoutMs', () => {
    const f = fakeFetch(200, '{}');
    expect(() => routeResolver('http://api', '', { fetch: f })).toThrow(TypeError);
    expect(() => routeResolver('http://api', 'bad user!', { fetch: f })).toThrow(TypeError);
    expect(() => routeResolver('not a url', 'bob', { fetch: f })).toThrow(TypeError);
    expect(() => routeResolver('http://api', 'bob', { fetch: f, timeoutMs: 0 })).toThrow(TypeError);
  });

  it('as resolveUrl: the client connects to the owner node the API names, and to url when the API fails', async () => {
    const owner = await FakeServer.start();
    const fallback = await FakeServer.start();
    cleanups.push(() => owner.close(), () => fallback.close());
    let up = true;
    const api = await routeApi(() => (up ? { status: 200, body: JSON.stringify({ user: 'alice', node: 'n2', url: owner.url }) } : { status: 500, body: '{}' }));
    const client = new SwitchboardClient({
      url: fallback.url,
      WebSocket,
      params: { user: 'alice' },
      minReconnectDelay: 5,
      maxReconnectDelay: 20,
      resolveUrl: routeResolver(api.base, 'alice'),
    });
    cleanups.push(async () => client.disconnect());
    const errors: string[] = [];
    client.on('error', (e) => errors.push(e.error.code));
    client.connect();
    const c0 = await owner.connection(0);
    expect(c0.url.searchParams.get('user')).toBe('alice');
    c0.welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    up = false;
    c0.kill();
    await fallback.connection(0);
    expect(errors).toEqual(['resolve_url']);
  });
});
