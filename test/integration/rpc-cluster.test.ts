/**
 * The rpc hook on two node processes over a real redis-server, against a
 * backend started here that checks every request's signature with the
 * server SDK: calls from either node reach it, its refusals come back as
 * codes, a slow call does not hold up a publish that crosses to the other
 * node, and while the backend is down calls are `unavailable` and the
 * connections stay healthy — and work again once it is back on its port.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ServerFrame } from '../../src/protocol/index.js';
import { verifyWebhook } from '../../src/server-sdk/index.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { TestBackend } from '../helpers/test-backend.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';

const SECRET = 'rpc-cluster-secret-0123456789';
const TIMEOUT_MS = 400;

let redis: RedisProcess;
let port = 0;
const calls: Array<{ user: string; method: string; signed: boolean }> = [];
const nodes: NodeProcess[] = [];
const clients: RawClient[] = [];

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    const call = JSON.parse(raw.toString('utf8')) as { user: string; session: string; method: string; data: unknown };
    const signed = verifyWebhook(raw, req.headers['x-switchboard-signature'], SECRET);
    calls.push({ user: call.user, method: call.method, signed });
    const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (!signed) return json(401, {});
    if (call.method === 'whoami') return json(200, { data: { user: call.user, session: call.session } });
    if (call.method === 'deny') return json(403, { error: { message: 'denied' } });
    if (call.method === 'slow') return void setTimeout(() => json(200, { data: 'late' }), TIMEOUT_MS * 4);
    json(404, {});
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

beforeAll(async () => {
  redis = await startRedis();
  await listen(0);
  for (const id of ['rpc-a', 'rpc-b']) {
    nodes.push(
      await startNodeProcess(id, ['--broker', redis.url, '--insecure', '--rpc-hook', `http://127.0.0.1:${port}/rpc`, '--hook-timeout', String(TIMEOUT_MS)], {
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

describe('the rpc hook across two nodes over Redis', () => {
  it('calls from either node reach the backend signed, with the caller; refusals come back as codes', async () => {
    for (const [i, node] of nodes.entries()) {
      const c = await connect(node, `caller-${i}`);
      expect(await c.request({ type: 'rpc', method: 'whoami', data: null })).toMatchObject({
        result: { data: { user: `caller-${i}`, session: c.welcome.session } },
      });
      expect(await c.request({ type: 'rpc', method: 'deny', data: null })).toMatchObject({ error: { code: 'forbidden', message: 'denied' } });
    }
    expect(calls.every((c) => c.signed)).toBe(true);
    expect(calls.filter((c) => c.method === 'whoami').map((c) => c.user)).toEqual(['caller-0', 'caller-1']);
  });

  it('a slow call is unavailable after the timeout, and a publish sent after it reaches the other node first', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const reader = await connect(b, 'reader');
    await reader.request({ type: 'subscribe', channel: 'room:rpc' });
    const writer = await connect(a, 'writer');
    const started = Date.now();
    writer.send({ type: 'rpc', id: 500, method: 'slow', data: null });
    writer.send({ type: 'publish', id: 501, channel: 'room:rpc', data: 'not held up' });
    const message = await reader.next((f) => f.type === 'message' && f.channel === 'room:rpc', 5000);
    expect(message).toMatchObject({ data: 'not held up', from: 'writer' });
    // Had the call held the connection's queue, its reply would have been written before the publish was even read.
    expect(writer.frames.some(isReply(500))).toBe(false);
    expect(await writer.next(isReply(500), 5000)).toMatchObject({ error: { code: 'unavailable' } });
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1500);
  });

  it('while the backend is down calls are unavailable and the connections stay healthy; once back, calls work again', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const reader = await connect(b, 'down-reader');
    await reader.request({ type: 'subscribe', channel: 'room:down' });
    const writer = await connect(a, 'down-writer');
    expect(await writer.request({ type: 'rpc', method: 'whoami', data: null })).toMatchObject({ result: { data: { user: 'down-writer' } } });

    await stopBackend();
    for (const c of [writer, reader]) {
      expect(await c.request({ type: 'rpc', method: 'whoami', data: null })).toMatchObject({ error: { code: 'unavailable' } });
    }
    writer.send({ type: 'ping', id: 600 });
    expect(await writer.next((f) => f.type === 'pong' && f.id === 600)).toBeTruthy();
    expect(await writer.request({ type: 'publish', channel: 'room:down', data: 'still here' })).toMatchObject({ result: {} });
    expect(await reader.next((f) => f.type === 'message' && f.channel === 'room:down', 5000)).toMatchObject({ data: 'still here' });

    await listen(port);
    await vi.waitFor(
      async () => expect(await writer.request({ type: 'rpc', method: 'whoami', data: null })).toMatchObject({ result: { data: { user: 'down-writer' } } }),
      { timeout: 5000, interval: 100 },
    );
  });
});
