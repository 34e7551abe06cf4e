/**
 * The rpc hook end to end: a real node (in this process) POSTs clients'
 * `rpc` frames to a real HTTP backend the test runs. Round trip with a
 * verifiable signature, the backend's refusals as error codes, a backend
 * down or slower than `--hook-timeout` answered `unavailable` while the
 * connection stays healthy and its other frames are not held up, and the
 * client SDK's `rpc()`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ClientError, SwitchboardClient } from '../../src/client/index.js';
import type { ServerFrame } from '../../src/protocol/index.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { verifyWebhook } from '../../src/server-sdk/index.js';
import { TEST_NODE, useNodes } from '../helpers/fixture.js';
import { freePort } from '../helpers/ports.js';
import { nextEvent } from '../helpers/wait.js';

const SECRET = 'rpc-hook-test-secret';
const TIMEOUT_MS = 300;
const SLOW_MS = 1500;

interface Call {
  user: string;
  session: string;
  method: string;
  data: unknown;
  signed: boolean;
}

/** The test's backend: answers by method name. */
async function startBackend(): Promise<{ url: string; calls: Call[]; server: http.Server }> {
  const calls: Call[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const call = { ...(JSON.parse(raw.toString('utf8')) as Omit<Call, 'signed'>), signed: verifyWebhook(raw, req.headers['x-switchboard-signature'], SECRET) };
      calls.push(call);
      const json = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      };
      if (!call.signed) return json(401, { error: { message: 'bad signature' } });
      if (call.method === 'echo') return json(200, { data: { user: call.user, session: call.session, data: call.data } });
      if (call.method === 'deny') return json(403, { error: { message: 'not yours' } });
      if (call.method === 'crash') return json(500, { error: { message: 'boom' } });
      if (call.method === 'slow') return void setTimeout(() => json(200, { data: 'too late' }), SLOW_MS);
      json(404, { error: { message: `no method ${call.method}` } });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/rpc`, calls, server };
}

const backends: http.Server[] = [];
const sdkClients: SwitchboardClient[] = [];
afterAll(async () => {
  for (const c of sdkClients) c.disconnect();
  for (const s of backends) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

type Reply = Extract<ServerFrame, { type: 'reply' }>;
const isReply = (id: number) => (f: ServerFrame) => f.type === 'reply' && f.id === id;

describe('the rpc hook', () => {
  const { node, connect } = useNodes();
  let backend: Awaited<ReturnType<typeof startBackend>>;
  let n: SwitchboardNode;

  it('passes a call to the backend, signed, and its data back', async () => {
    backend = await startBackend();
    backends.push(backend.server);
    n = await node({ nodeId: 'rpc-1', rpcHook: backend.url, hookSecret: SECRET, hookTimeout: TIMEOUT_MS });
    const c = await connect(n, 'user=rita');
    const reply = await c.request({ type: 'rpc', method: 'echo', data: { q: [1, 2] } });
    expect(reply).toMatchObject({ result: { data: { user: 'rita', session: c.welcome.session, data: { q: [1, 2] } } } });
    expect(backend.calls.at(-1)).toEqual({ user: 'rita', session: c.welcome.session, method: 'echo', data: { q: [1, 2] }, signed: true });
  });

  it("answers the backend's 4xx with its code and message, and 5xx with unavailable", async () => {
    const c = await connect(n, 'user=rita');
    expect(await c.request({ type: 'rpc', method: 'deny', data: null })).toMatchObject({ error: { code: 'forbidden', message: 'not yours' } });
    expect(await c.request({ type: 'rpc', method: 'missing', data: null })).toMatchObject({ error: { code: 'not_found', message: 'no method missing' } });
    expect(await c.request({ type: 'rpc', method: 'crash', data: null })).toMatchObject({ error: { code: 'unavailable' } });
  });

  it('refuses a malformed rpc frame before the backend sees it', async () => {
    const c = await connect(n, 'user=rita');
    const before = backend.calls.length;
    expect(await c.request({ type: 'rpc', method: 'bad method!', data: 1 })).toMatchObject({ error: { code: 'bad_request' } });
    expect(await c.request({ type: 'rpc', method: 'echo' })).toMatchObject({ error: { code: 'bad_request' } });
    expect(backend.calls.length).toBe(before);
  });

  it('a backend slower than the timeout is unavailable in time, and a publish and a ping sent after it are answered first', async () => {
    const c = await connect(n, 'user=rita');
    await c.request({ type: 'subscribe', channel: 'room:slow' });
    const started = Date.now();
    c.send({ type: 'rpc', id: 900, method: 'slow', data: null });
    c.send({ type: 'publish', id: 901, channel: 'room:slow', data: 'meanwhile' });
    c.send({ type: 'ping', id: 902 });
    const rpcReply = (await c.next(isReply(900), 5000)) as Reply;
    const took = Date.now() - started;
    expect(rpcReply).toMatchObject({ error: { code: 'unavailable' } });
    expect(took).toBeGreaterThanOrEqual(TIMEOUT_MS - 10);
    expect(took).toBeLessThan(TIMEOUT_MS + 1000);
    const order = c.frames.map((f) => (f.type === 'reply' || f.type === 'pong' ? f.id : undefined)).filter((id) => id !== undefined && id >= 900);
    expect(order).toEqual([901, 902, 900]);
    expect(c.messages('room:slow').map((m) => m.data)).toEqual(['meanwhile']);
  });

  it('without --rpc-hook an rpc is not_found', async () => {
    const plain = await node({ nodeId: 'rpc-none' });
    const c = await connect(plain, 'user=rita');
    expect(await c.request({ type: 'rpc', method: 'echo', data: 1 })).toMatchObject({ error: { code: 'not_found', message: 'no rpc hook configured' } });
  });

  it('a backend that is down is unavailable, and the connection stays healthy', async () => {
    const down = await node({ nodeId: 'rpc-down', rpcHook: `http://127.0.0.1:${await freePort()}/rpc`, hookSecret: SECRET, hookTimeout: TIMEOUT_MS });
    const c = await connect(down, 'user=rita');
    await c.request({ type: 'subscribe', channel: 'room:down' });
    for (let i = 0; i < 3; i++) {
      expect(await c.request({ type: 'rpc', method: 'echo', data: i })).toMatchObject({ error: { code: 'unavailable' } });
    }
    c.send({ type: 'ping', id: 77 });
    expect(await c.next((f) => f.type === 'pong' && f.id === 77)).toBeTruthy();
    expect(await c.request({ type: 'publish', channel: 'room:down', data: 'still here' })).toMatchObject({ result: {} });
    await c.waitFor((f) => f.type === 'message' && f.channel === 'room:down', 1, 5000);
    const metrics = await (await fetch(`http://127.0.0.1:${down.port}/metrics`)).text();
    expect(metrics).toMatch(/switchboard_hook_requests_total\{[^}]*hook="rpc"[^}]*outcome="unavailable"[^}]*\} 3/);
  });

  it('the client SDK resolves rpc() with the answer and rejects it with the code', async () => {
    const client = new SwitchboardClient({ url: `ws://127.0.0.1:${n.port}/ws`, WebSocket, params: { user: 'sam' } });
    sdkClients.push(client);
    client.connect();
    await nextEvent((listener) => client.once('connected', listener), 10_000, 'the client to connect');
    await expect(client.rpc('echo', { x: 1 })).resolves.toMatchObject({ user: 'sam', data: { x: 1 } });
    const denied = await client.rpc('deny', null).catch((err: unknown) => err);
    expect(denied).toBeInstanceOf(ClientError);
    expect((denied as ClientError).code).toBe('forbidden');
    await expect(client.rpc('slow', null)).rejects.toMatchObject({ code: 'unavailable' });
    expect(() => client.rpc('', null)).toThrow(ClientError);
    expect(() => client.rpc('echo', undefined)).toThrow(/data must not be undefined/);
  });

  it('a node refuses an rpc hook without a key to sign with', async () => {
    await expect(startNode({ ...TEST_NODE, rpcHook: 'http://127.0.0.1:9/rpc' })).rejects.toThrow(/hookSecret/);
  });
});
