/**
 * The MessagePack codec (`--msgpack`) on real node processes
 * (`bin/switchboard.js` from dist/: run `npm run build` first).
 *
 * A node with `--msgpack` speaks MessagePack to clients that offer
 * `switchboard.v1.msgpack` and JSON to the others, on the same channels:
 * both kinds of client get the same publications in the same order.
 * Subscribe with recovery (a backlog too big for one reply included),
 * publish, send and ack work over it; frames of the wrong kind and hostile
 * frames get the JSON codec's error replies. A node without the flag never
 * selects the subprotocol, and the SDK falls back to JSON there.
 */
import { encode } from '@msgpack/msgpack';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { SwitchboardClient, type ClientOptions, type ConnectedEvent, type Publication } from '../../src/client/index.js';
import { ACK_FLUSH_MS } from '../../src/server/core/acks.js';
import { loadOptions } from '../../src/server/config/load.js';
import type { ClientFrame, ServerFrame } from '../../src/protocol/frames.js';
import { encodeClientFrameBinary, MSGPACK_SUBPROTOCOL, parseMsgpack } from '../../src/protocol/msgpack.js';
import { api } from '../helpers/api.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { sleep } from '../helpers/wait.js';

const BASE_ARGS = ['--insecure', '--api-key', 'test-key', '--max-messages-per-second', '10000'];
/** Small enough that a backlog of 100 messages of 1 KiB (the default history) does not fit one subscribe reply (half of it). */
const MAX_BUFFERED = 64 * 1024;

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
let seq = 0;
const fresh = (label: string): string => `${label}-${process.pid}-${++seq}`;

let withMsgpack: NodeProcess;
let without: NodeProcess;
const sdks: SwitchboardClient[] = [];
const raws: RawMsgpack[] = [];

beforeAll(async () => {
  [withMsgpack, without] = await Promise.all([
    startNodeProcess('mp-on', [...BASE_ARGS, '--msgpack', '--max-buffered-bytes', String(MAX_BUFFERED)]),
    startNodeProcess('mp-off', BASE_ARGS),
  ]);
});
afterEach(async () => {
  for (const c of sdks.splice(0)) c.disconnect();
  for (const r of raws.splice(0)) r.ws.terminate();
});
afterAll(async () => {
  await Promise.all([withMsgpack?.stop(), without?.stop()]);
});

/** A raw `ws` client that records every frame with its kind, decoding binary ones as MessagePack. */
class RawMsgpack {
  readonly frames: Array<{ binary: boolean; frame: ServerFrame }> = [];
  readonly closed: Promise<number>;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      let frame: ServerFrame;
      if (isBinary) {
        const parsed = parseMsgpack(data);
        if (!parsed.ok) throw new Error(parsed.reason);
        frame = parsed.value as ServerFrame;
      } else {
        frame = JSON.parse(data.toString('utf8')) as ServerFrame;
      }
      this.frames.push({ binary: isBinary, frame });
    });
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  }

  static async open(node: NodeProcess, query: string, protocols: string[]): Promise<RawMsgpack> {
    const ws = new WebSocket(node.ws(query), protocols);
    const raw = new RawMsgpack(ws);
    raws.push(raw);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await raw.next((f) => f.type === 'welcome');
    return raw;
  }

  next(match: (f: ServerFrame) => boolean, timeout = 5000): Promise<ServerFrame> {
    return vi.waitFor(() => {
      const found = this.frames.find((f) => match(f.frame));
      if (!found) throw new Error('frame not there yet');
      return found.frame;
    }, { timeout, interval: 20 });
  }

  reply(id: number): Promise<ServerFrame> {
    return this.next((f) => f.type === 'reply' && f.id === id);
  }

  sendBinary(frame: ClientFrame | Uint8Array): void {
    this.ws.send(frame instanceof Uint8Array ? frame : encodeClientFrameBinary(frame), { binary: true });
  }
}

function sdk(node: NodeProcess, user: string, opts: Partial<ClientOptions> = {}) {
  const c = new SwitchboardClient({ url: node.ws(), WebSocket, params: { user }, minReconnectDelay: 20, maxReconnectDelay: 200, ...opts });
  sdks.push(c);
  const received: Publication[] = [];
  c.on('message', (m) => received.push(m));
  const connected = new Promise<ConnectedEvent>((resolve) => c.once('connected', resolve));
  c.connect();
  return { c, received, connected };
}

const publishApi = (node: NodeProcess, channel: string, data: unknown) => api(node.url(), 'POST', '/api/publish', { channel, data });

describe('--msgpack', () => {
  it('is a switch from flags and from SWITCHBOARD_MSGPACK, off by default', () => {
    expect(loadOptions({ argv: ['--insecure'], env: {} }).msgpack).toBe(false);
    expect(loadOptions({ argv: ['--insecure', '--msgpack'], env: {} }).msgpack).toBe(true);
    expect(loadOptions({ argv: ['--insecure'], env: { SWITCHBOARD_MSGPACK: '1' } }).msgpack).toBe(true);
  });
});

describe('a node with --msgpack', () => {
  it('delivers the same publications in the same order to a MessagePack and a JSON client', async () => {
    const channel = `chat:${fresh('mixed')}`;
    const mp = sdk(withMsgpack, fresh('mp'), { codec: 'msgpack' });
    const js = sdk(withMsgpack, fresh('js'));
    expect((await mp.connected).codec).toBe('msgpack');
    expect((await js.connected).codec).toBe('json');
    const subs = [mp.c.subscribe(channel), js.c.subscribe(channel)];
    await vi.waitFor(() => expect(subs.map((s) => s.state)).toEqual(['subscribed', 'subscribed']), { timeout: 5_000, interval: 20 });

    const sent: unknown[] = [];
    for (const i of range(1, 30)) {
      const data = { i, text: `message ${i} ✓`, nested: { list: [i, i / 2, null, true], empty: {} } };
      sent.push(data);
      if (i % 3 === 0) expect((await publishApi(withMsgpack, channel, data)).status).toBe(200);
      else await (i % 3 === 1 ? mp : js).c.publish(channel, data);
    }
    const onChannel = (r: Publication[]) => r.filter((m) => m.channel === channel);
    await vi.waitFor(() => expect([onChannel(mp.received).length, onChannel(js.received).length]).toEqual([30, 30]), { timeout: 5_000, interval: 20 });
    expect(onChannel(mp.received).map((m) => m.data)).toEqual(sent);
    expect(onChannel(mp.received)).toEqual(onChannel(js.received));
    const offsets = onChannel(mp.received).map((m) => m.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => (a ?? 0) - (b ?? 0)));
    // …and what came in over MessagePack reads the same from history (JSON over HTTP).
    const history = await api(withMsgpack.url(), 'GET', `/api/history/${channel}?since=0&limit=100`);
    expect((history.body.messages as Publication[]).map((m) => m.data)).toEqual(sent);
  });

  it('recovers a subscription over MessagePack after a reconnect', async () => {
    const channel = `chat:${fresh('recover')}`;
    const mp = sdk(withMsgpack, fresh('mp'), { codec: 'msgpack' });
    await mp.connected;
    const sub = mp.c.subscribe(channel);
    await vi.waitFor(() => expect(sub.state).toBe('subscribed'), { timeout: 5_000, interval: 20 });
    for (const i of range(1, 3)) await publishApi(withMsgpack, channel, i);
    await vi.waitFor(() => expect(mp.received.length).toBe(3), { timeout: 5_000, interval: 20 });
    mp.c.disconnect();
    for (const i of range(4, 8)) await publishApi(withMsgpack, channel, i);
    const recovered = new Promise<boolean>((resolve) => sub.once('subscribed', (e) => resolve(e.recovered)));
    mp.c.connect();
    expect(await recovered).toBe(true);
    await vi.waitFor(() => expect(mp.received.map((m) => m.data)).toEqual(range(1, 8)), { timeout: 5_000, interval: 20 });
  });

  it('sends a backlog larger than one reply as binary message frames, in order', async () => {
    const channel = `chat:${fresh('backlog')}`;
    const filler = 'x'.repeat(900);
    for (const i of range(1, 100)) expect((await publishApi(withMsgpack, channel, { i, filler })).status).toBe(200);
    const raw = await RawMsgpack.open(withMsgpack, `user=${fresh('raw')}`, [MSGPACK_SUBPROTOCOL]);
    raw.sendBinary({ type: 'subscribe', id: 1, channel, since: { offset: 0, epoch: '' } });
    const reply = await raw.reply(1);
    const result = (reply as { result: { recovered: boolean; messages: Publication[] } }).result;
    expect(result.recovered).toBe(true);
    expect(result.messages.length).toBeLessThan(100); // the rest follows as message frames
    const rest = () => raw.frames.filter((f) => f.frame.type === 'message' && f.frame.channel === channel);
    await vi.waitFor(() => expect(result.messages.length + rest().length).toBe(100), { timeout: 10_000, interval: 20 });
    expect(rest().every((f) => f.binary)).toBe(true);
    const order = [...result.messages, ...rest().map((f) => f.frame as Publication)].map((m) => (m.data as { i: number }).i);
    expect(order).toEqual(range(1, 100));
  });

  it('delivers send over MessagePack, and acks move the device position', async () => {
    const bob = fresh('bob');
    const alice = sdk(withMsgpack, fresh('alice'), { codec: 'msgpack' });
    const phone = sdk(withMsgpack, bob, { codec: 'msgpack', device: 'phone', ackInterval: 20 });
    await Promise.all([alice.connected, phone.connected]);
    for (const i of range(1, 4)) await alice.c.send(bob, { i });
    await vi.waitFor(() => expect(phone.received.map((m) => m.data)).toEqual(range(1, 4).map((i) => ({ i }))), { timeout: 5_000, interval: 20 });
    expect(phone.received.every((m) => m.from === alice.c.connection?.user)).toBe(true);
    // disconnect() flushes the SDK's acks (sent over MessagePack); the node writes them within ACK_FLUSH_MS.
    phone.c.disconnect();
    // Pause, not a wait: the SDK may have acked already, so no new write can be counted on.
    await sleep(ACK_FLUSH_MS * 3);
    await alice.c.send(bob, { i: 5 });
    const again = sdk(withMsgpack, bob, { codec: 'msgpack', device: 'phone' });
    await again.connected;
    await vi.waitFor(() => expect(again.received.length).toBeGreaterThanOrEqual(1), { timeout: 5_000, interval: 20 });
    // Pause, not a wait: no duplicate may follow.
    await sleep(200);
    expect(again.received.map((m) => m.data)).toEqual([{ i: 5 }]);
  });

  it('gives a raw client that offers the subprotocol binary frames, and the JSON codec\'s answers', async () => {
    const raw = await RawMsgpack.open(withMsgpack, `user=${fresh('raw')}`, [MSGPACK_SUBPROTOCOL, 'switchboard.v1']);
    expect(raw.ws.protocol).toBe(MSGPACK_SUBPROTOCOL);
    expect(raw.frames[0]).toMatchObject({ binary: true, frame: { type: 'welcome' } });

    raw.sendBinary({ type: 'ping', id: 7 });
    await raw.next((f) => f.type === 'pong' && f.id === 7);

    // A text frame on a MessagePack connection is refused as a binary one is on JSON.
    raw.ws.send(JSON.stringify({ type: 'ping', id: 8 }));
    const refused = await raw.next((f) => f.type === 'error');
    expect(refused).toMatchObject({ error: { code: 'bad_request', message: expect.stringMatching(/text frames/) } });

    // Too deep, with an id: a reply to it, as for JSON.
    let deep: unknown = [];
    for (let i = 0; i < 40; i++) deep = [deep];
    raw.sendBinary(encode({ type: 'publish', id: 9, channel: 'chat:a', data: deep }));
    expect(await raw.reply(9)).toMatchObject({ error: { code: 'bad_request', message: 'frame nests deeper than 32 levels' } });
    // Binary data JSON cannot carry.
    raw.sendBinary(encode({ type: 'publish', id: 10, channel: 'chat:a', data: new Uint8Array(3) }));
    expect(await raw.reply(10)).toMatchObject({ error: { code: 'bad_request', message: expect.stringMatching(/binary data/) } });
    // An extension type: not valid MessagePack, so an error frame (no id to reply to).
    raw.sendBinary(Uint8Array.from([0xd4, 0x05, 0x00]));
    await vi.waitFor(() => expect(raw.frames.filter((f) => f.frame.type === 'error').length).toBe(2), { timeout: 5_000, interval: 20 });
    expect(raw.frames.every((f) => f.binary)).toBe(true);
    expect(raw.ws.readyState).toBe(WebSocket.OPEN);

    // Over the frame size limit: closed with 1009, as a JSON client is.
    raw.sendBinary(encode({ type: 'publish', id: 11, channel: 'chat:a', data: 'y'.repeat(70_000) }));
    expect(await raw.closed).toBe(1009);
  });

  it('keeps a JSON client on JSON when it does not offer the subprotocol', async () => {
    const raw = await RawMsgpack.open(withMsgpack, `user=${fresh('json')}`, ['switchboard.v1']);
    expect(raw.ws.protocol).toBe('switchboard.v1');
    expect(raw.frames[0]).toMatchObject({ binary: false, frame: { type: 'welcome' } });
    raw.sendBinary({ type: 'ping', id: 1 });
    expect(await raw.next((f) => f.type === 'error')).toMatchObject({ error: { code: 'bad_request', message: expect.stringMatching(/binary frames/) } });
    expect(raw.frames.every((f) => !f.binary)).toBe(true);
  });
});

describe('a node without --msgpack', () => {
  it('never selects the MessagePack subprotocol: switchboard.v1 when offered too, else none', async () => {
    const both = await RawMsgpack.open(without, `user=${fresh('raw')}`, [MSGPACK_SUBPROTOCOL, 'switchboard.v1']);
    expect(both.ws.protocol).toBe('switchboard.v1');
    expect(both.frames[0]?.binary).toBe(false);
    const none = await RawMsgpack.open(without, `user=${fresh('raw')}`, []);
    expect(none.ws.protocol).toBe('');
    expect(none.frames[0]?.binary).toBe(false);
    // Offered alone, it is not selected: the node answers with no subprotocol, which `ws` (unlike browsers) refuses.
    await expect(RawMsgpack.open(without, `user=${fresh('raw')}`, [MSGPACK_SUBPROTOCOL])).rejects.toThrow(/no subprotocol/);
  });

  it('the SDK asked for MessagePack falls back to JSON and works', async () => {
    const channel = `chat:${fresh('fallback')}`;
    const mp = sdk(without, fresh('mp'), { codec: 'msgpack' });
    expect((await mp.connected).codec).toBe('json');
    const sub = mp.c.subscribe(channel);
    await vi.waitFor(() => expect(sub.state).toBe('subscribed'), { timeout: 5_000, interval: 20 });
    await mp.c.publish(channel, { hello: 'json' });
    await vi.waitFor(() => expect(mp.received.map((m) => m.data)).toEqual([{ hello: 'json' }]), { timeout: 5_000, interval: 20 });
  });
});
