/**
 * Every limit of a node, hit over real sockets: each must answer with the
 * SPEC's code and leave the node serving others.
 */
import { describe, expect, it, vi } from 'vitest';
import type WebSocket from 'ws';
import type { SwitchboardNode } from '../../src/server/node.js';
import type { NodeOptionsInput } from '../../src/server/options.js';
import { api } from '../helpers/api.js';
import { useNodes } from '../helpers/fixture.js';
import { RawClient } from '../helpers/raw-client.js';
import { metric } from '../helpers/metrics.js';
import { sleep } from '../helpers/wait.js';

const { node: startTestNode, connect: open } = useNodes();

const node = (limits: NodeOptionsInput['limits'], opts: NodeOptionsInput = {}) => startTestNode({ limits, ...opts });
const connect = (n: SwitchboardNode, user: string) => open(n, `user=${user}`);

describe('limits', () => {
  it('closes with 1009 a frame over the size limit', async () => {
    const n = await node({ maxFrameBytes: 1024 });
    const c = await connect(n, 'big');
    c.send({ type: 'publish', id: 1, channel: 'x', data: 'a'.repeat(900) });
    await c.next((f) => f.type === 'reply' && f.id === 1);
    c.send({ type: 'publish', id: 2, channel: 'x', data: 'a'.repeat(2000) });
    expect((await c.closed).code).toBe(1009);
  });

  it('refuses upgrades past the connection limit with 503, and accepts again when one leaves', async () => {
    const n = await node({ maxConnections: 2 });
    const a = await connect(n, 'c1');
    await connect(n, 'c2');
    await expect(RawClient.open(`ws://127.0.0.1:${n.port}/ws?user=c3`)).rejects.toMatchObject({ status: 503 });
    await a.close();
    await vi.waitUntil(async () => (await metric(n.url('/metrics'), 'switchboard_connections')) === 1, { timeout: 5_000, interval: 20 });
    await connect(n, 'c4');
  });

  it('refuses new connections from one IP past the per-second limit with 429', async () => {
    const n = await node({ maxConnectionsPerIpPerSecond: 3 });
    const results = await Promise.allSettled(
      [1, 2, 3, 4, 5].map((i) => RawClient.open(`ws://127.0.0.1:${n.port}/ws?user=ip${i}`)),
    );
    const opened = results.filter((r): r is PromiseFulfilledResult<RawClient> => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(opened).toHaveLength(3);
    expect(refused.map((r) => (r.reason as { status: number }).status)).toEqual([429, 429]);
    expect((refused[0]?.reason as { body: string }).body).toContain('rate_limited');
    // Pause, not a wait: the per-IP rate window (1 s) passes.
    await sleep(1100);
    await connect(n, 'ip6');
    await Promise.all(opened.map((r) => r.value.close()));
  });

  it('answers rate_limited past the message rate, then closes with 4129 when the client keeps on', async () => {
    const n = await node({ maxMessagesPerSecond: 10 });
    const c = await connect(n, 'chatty');
    for (let i = 1; i <= 15; i++) c.send({ type: 'ping', id: i });
    const limited = await c.next((f) => f.type === 'reply' && 'error' in f && f.error.code === 'rate_limited');
    expect(limited).toMatchObject({ type: 'reply', error: { code: 'rate_limited' } });
    expect(c.frames.filter((f) => f.type === 'pong')).toHaveLength(10);
    for (let i = 16; i <= 60; i++) c.send({ type: 'ping', id: i });
    expect((await c.closed).code).toBe(4129);
    expect(c.frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4129, reconnect: true });
  });

  it('refuses subscriptions past the per-connection limit, and the connection stays', async () => {
    const n = await node({ maxSubscriptions: 3 });
    const c = await connect(n, 'collector');
    for (const ch of ['a', 'b', 'c']) expect(await c.request({ type: 'subscribe', channel: ch })).toHaveProperty('result');
    expect(await c.request({ type: 'subscribe', channel: 'd' })).toMatchObject({ error: { code: 'too_large' } });
    await c.request({ type: 'unsubscribe', channel: 'a' });
    expect(await c.request({ type: 'subscribe', channel: 'd' })).toHaveProperty('result');
  });

  it('closes a connection that stops reading with 4101 once its buffered bytes pass the limit', async () => {
    const n = await node({ maxBufferedBytes: 256 * 1024 });
    const slow = await connect(n, 'slow');
    const other = await connect(n, 'fast');
    await slow.request({ type: 'subscribe', channel: 'firehose' });
    await other.request({ type: 'subscribe', channel: 'firehose' });
    // Stop reading: the kernel buffers fill, then the server's queue grows.
    (slow.ws as WebSocket & { _socket: { pause(): void; resume(): void } })._socket.pause();
    const chunk = 'x'.repeat(64 * 1024);
    let sent = 0;
    const deadline = Date.now() + 20_000;
    while (sent < 2000 && Date.now() < deadline) {
      await api(n.url(), 'POST', '/api/publish', { channel: 'firehose', data: chunk });
      sent++;
      const members = (await api(n.url(), 'GET', '/api/presence/firehose')).body as { members: unknown[] };
      if (members.members.length === 1) break;
    }
    const presence = (await api(n.url(), 'GET', '/api/presence/firehose')).body as { members: Array<{ user: string }> };
    expect(presence.members.map((m) => m.user)).toEqual(['fast']);
    (slow.ws as WebSocket & { _socket: { resume(): void } })._socket.resume();
    expect((await slow.closed).code).toBe(4101);
    // The reader that kept up got everything.
    await other.waitFor((f) => f.type === 'message', sent);
  }, 40_000);

  it('answers malformed frames with errors and keeps the connection, until repeated abuse closes it with 4008', async () => {
    const n = await node({});
    const c = await connect(n, 'abuser');
    c.send('{not json');
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ error: { code: 'bad_request' } });
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await c.waitFor((f) => f.type === 'error', 2);
    expect(c.frames.filter((f) => f.type === 'error').at(-1)).toMatchObject({ error: { message: expect.stringContaining('binary') } });
    c.send({ type: 'ping', id: 1 });
    expect(await c.next((f) => f.type === 'pong')).toEqual({ type: 'pong', id: 1 });
    for (let i = 0; i < 10; i++) c.send({ type: 'nope', id: 100 + i });
    expect((await c.closed).code).toBe(4008);
    expect(c.frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4008, reconnect: false });
  });
});
