/**
 * The pre-framed fan-out path over real sockets: real `ws` clients get
 * every message of a burst intact and in order, interleaved with replies;
 * a slow consumer is still closed with 4101; permessage-deflate is
 * negotiated only with --permessage-deflate, and then compresses.
 */
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ServerFrame } from '../../src/protocol/index.js';
import { CorkBatch } from '../../src/server/http/ws-out.js';
import { api } from '../helpers/api.js';
import { useNodes } from '../helpers/fixture.js';
import { RawClient } from '../helpers/raw-client.js';
import { sleep } from '../helpers/wait.js';

const { node, connect } = useNodes();

afterEach(() => {
  vi.restoreAllMocks();
});

type MessageFrame = Extract<ServerFrame, { type: 'message' }>;

/** Publish `count` messages to `channel` through the API, `inFlight` requests at a time, so that deliveries bunch up. */
async function burst(base: string, channel: string, count: number, data: (i: number) => unknown, inFlight = 25): Promise<void> {
  for (let start = 0; start < count; start += inFlight) {
    const batch: Array<Promise<unknown>> = [];
    for (let i = start; i < Math.min(count, start + inFlight); i++) {
      batch.push(api(base, 'POST', '/api/publish', { channel, data: data(i) }).then((r) => expect(r.status).toBe(200)));
    }
    await Promise.all(batch);
  }
}

/** The client's socket, to read how many bytes really crossed the wire. */
function rawSocket(c: RawClient): Socket {
  return (c.ws as WebSocket & { _socket: Socket })._socket;
}

describe('pre-framed fan-out', () => {
  it('delivers a burst intact and in order to every subscriber, interleaved with replies, through the fast path', async () => {
    const writes = vi.spyOn(CorkBatch.prototype, 'write');
    const n = await node();
    const clients = await Promise.all(Array.from({ length: 12 }, (_, i) => connect(n, `user=fan${i}`)));
    for (const c of clients) await c.request({ type: 'subscribe', channel: 'burst' });
    const N = 300;
    // Multi-byte text, and sizes that cross the 7-bit and 16-bit length forms.
    const data = (i: number): unknown => ({ i, text: 'é✓😀'.repeat(i % 7 === 0 ? 20_000 : i % 50) });
    const pinging = (async () => {
      const pongs: number[] = [];
      for (let i = 0; i < 30; i++) {
        const id = 10_000 + i;
        clients[0]!.send({ type: 'ping', id });
        pongs.push(((await clients[0]!.next((f) => f.type === 'pong' && f.id === id)) as { id: number }).id);
      }
      return pongs;
    })();
    await burst(n.url(), 'burst', N, data);
    expect(await pinging).toHaveLength(30);
    for (const c of clients) {
      await c.waitFor((f) => f.type === 'message', N);
      const got = c.messages('burst');
      expect(got).toHaveLength(N);
      const offsets = got.map((m) => m.offset!);
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
      expect(new Set(offsets).size).toBe(N);
      const values = got.map((m) => m.data as { i: number; text: string }).sort((a, b) => a.i - b.i);
      values.forEach((v, i) => expect(v).toEqual(data(i)));
    }
    // Every one of those deliveries went out pre-framed.
    expect(writes.mock.calls.length).toBeGreaterThanOrEqual(N * clients.length);
  });

  it('keeps a recovering subscription ordered: the reply (written by ws) before the held live messages (written pre-framed)', async () => {
    const n = await node();
    const c = await connect(n, 'user=recover');
    const first = (await api(n.url(), 'POST', '/api/publish', { channel: 'rec', data: 0 })).body as { offset: number; epoch: string };
    // Subscribe from before the first message while a burst is being published: live messages are held, then follow the reply.
    const published = burst(n.url(), 'rec', 100, (i) => i + 1, 20);
    const reply = await c.request({ type: 'subscribe', channel: 'rec', since: { offset: first.offset - 1, epoch: first.epoch } });
    await published;
    await c.waitFor((f) => f.type === 'message', 1);
    const lastOffset = first.offset + 100;
    const seen = (): number[] => {
      const inline = 'result' in reply ? ((reply.result as { messages?: MessageFrame[] }).messages ?? []) : [];
      return [...inline.map((m) => m.offset!), ...c.messages('rec').map((m) => m.offset!)];
    };
    await vi.waitUntil(() => seen().includes(lastOffset), { timeout: 10_000, interval: 10 }).catch(() => undefined); // the assertion below says what is missing
    const offsets = seen();
    expect(offsets).toEqual(Array.from({ length: 101 }, (_, i) => first.offset + i));
    const replyAt = c.frames.findIndex((f) => f.type === 'reply' && f.id === reply.id);
    const firstMessageAt = c.frames.findIndex((f) => f.type === 'message' && f.channel === 'rec');
    expect(replyAt).toBeGreaterThanOrEqual(0);
    expect(firstMessageAt).toBeGreaterThan(replyAt);
  });

  it('still closes a subscriber that stops reading with 4101', async () => {
    const writes = vi.spyOn(CorkBatch.prototype, 'write');
    const n = await node({ limits: { maxBufferedBytes: 256 * 1024 } });
    const slow = await connect(n, 'user=slow');
    const fast = await connect(n, 'user=fast');
    await slow.request({ type: 'subscribe', channel: 'hose' });
    await fast.request({ type: 'subscribe', channel: 'hose' });
    rawSocket(slow).pause();
    const chunk = 'y'.repeat(16 * 1024);
    const deadline = Date.now() + 20_000;
    for (let sent = 0; sent < 4000 && Date.now() < deadline; sent++) {
      await api(n.url(), 'POST', '/api/publish', { channel: 'hose', data: chunk });
      const members = (await api(n.url(), 'GET', '/api/presence/hose')).body as { members: unknown[] };
      if (members.members.length === 1) break;
    }
    rawSocket(slow).resume();
    expect((await slow.closed).code).toBe(4101);
    expect(slow.frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4101 });
    expect(writes.mock.calls.length).toBeGreaterThan(0);
    // The reader that kept up got everything, in order.
    const offsets = fast.messages('hose').map((m) => m.offset!);
    expect(offsets.length).toBeGreaterThan(0);
    expect(offsets).toEqual(Array.from({ length: offsets.length }, (_, i) => offsets[0]! + i));
  });
});

/** The `Sec-WebSocket-Extensions` answer of the node to the offer a ws client makes by default. */
function negotiated(port: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?user=probe`);
    ws.once('upgrade', (res) => {
      resolve(res.headers['sec-websocket-extensions']);
      ws.once('open', () => ws.close());
    });
    ws.once('error', reject);
  });
}

describe('--permessage-deflate', () => {
  /** Publish `count` compressible messages of about 8 KiB and return the bytes the client read for them. */
  async function compressibleBytes(c: RawClient, base: string, channel: string, count: number): Promise<number> {
    await c.request({ type: 'subscribe', channel });
    const before = rawSocket(c).bytesRead;
    const data = (i: number): unknown => ({ i, rows: Array.from({ length: 100 }, (_, k) => ({ name: `row ${k}`, value: 'abcdefghij'.repeat(5) })) });
    await burst(base, channel, count, data, 5);
    await c.waitFor((f) => f.type === 'message', count);
    const got = c.messages(channel).map((m) => m.data);
    expect(got).toEqual(Array.from({ length: count }, (_, i) => data(i)));
    return rawSocket(c).bytesRead - before;
  }

  const COUNT = 20;
  const PAYLOAD = Buffer.byteLength(JSON.stringify({ i: 0, rows: Array.from({ length: 100 }, (_, k) => ({ name: `row ${k}`, value: 'abcdefghij'.repeat(5) })) }));

  it('is not negotiated by default: the messages go out uncompressed and pre-framed', async () => {
    const writes = vi.spyOn(CorkBatch.prototype, 'write');
    const n = await node();
    const c = await connect(n, 'user=plain'); // the ws client offers permessage-deflate by default
    expect(c.ws.extensions).toBe('');
    expect(await negotiated(n.port)).toBeUndefined();
    const bytes = await compressibleBytes(c, n.url(), 'plain', COUNT);
    expect(bytes).toBeGreaterThan(COUNT * PAYLOAD);
    expect(writes.mock.calls.length).toBeGreaterThanOrEqual(COUNT);
  });

  it('is negotiated with the flag, and compresses large messages on the wire (through ws, not the fast path)', async () => {
    const writes = vi.spyOn(CorkBatch.prototype, 'write');
    const n = await node({ permessageDeflate: true });
    const c = await connect(n, 'user=zipped');
    expect(c.ws.extensions).toContain('permessage-deflate');
    expect(await negotiated(n.port)).toBe('permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10');
    const bytes = await compressibleBytes(c, n.url(), 'zipped', COUNT);
    expect(bytes).toBeLessThan((COUNT * PAYLOAD) / 4);
    expect(writes).not.toHaveBeenCalled();
  });

  it('leaves a client that does not offer it uncompressed and on the fast path, with the flag on', async () => {
    const writes = vi.spyOn(CorkBatch.prototype, 'write');
    const n = await node({ permessageDeflate: true });
    const c = await RawClient.connect(`ws://127.0.0.1:${n.port}/ws?user=nozip`, { perMessageDeflate: false });
    try {
      expect(c.ws.extensions).toBe('');
      const bytes = await compressibleBytes(c, n.url(), 'nozip', 5);
      expect(bytes).toBeGreaterThan(5 * PAYLOAD);
      expect(writes.mock.calls.length).toBeGreaterThanOrEqual(5);
    } finally {
      await c.close();
    }
  });
});
