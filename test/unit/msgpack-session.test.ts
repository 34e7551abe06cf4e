/**
 * The node's side of the MessagePack codec, without sockets: sessions on
 * the binary codec write MessagePack (welcome, replies, fan-out, recovered
 * backlogs, disconnect), a publication's binary frame is encoded once for
 * all its binary subscribers and never for a channel without them, and the
 * frame handler refuses frames of the other kind as it refuses binary
 * frames on JSON connections.
 */
import { encode } from '@msgpack/msgpack';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryBroker } from '../../src/brokers/memory/memory-broker.js';
import type { Publication, ServerFrame } from '../../src/protocol/frames.js';
import { encodeClientFrameBinary, parseMsgpack, type WireCodec } from '../../src/protocol/msgpack.js';
import { FrameHandler } from '../../src/server/core/frame-handler.js';
import { Gateway } from '../../src/server/core/gateway.js';
import { Session, type Outgoing, type Transport } from '../../src/server/core/session.js';
import { Metrics } from '../../src/server/metrics.js';
import { DEFAULT_LIMITS, withDefaults } from '../../src/server/options.js';
import { InterestRouting } from '../../src/server/routing/strategies.js';

/** Records what a session writes, decoding it in the codec it expects; `fast` adds `sendMessage` (the shared object). */
class Recorder implements Transport {
  readonly raw: Array<Buffer | string> = [];
  readonly outgoing: Outgoing[] = [];
  closedWith: number | undefined;
  bufferedAmount = 0;
  sendMessage?: (message: Outgoing) => void;
  constructor(
    readonly codec: WireCodec,
    fast = false,
  ) {
    if (fast) this.sendMessage = (message) => void this.outgoing.push(message);
  }
  send(data: Buffer | string): void {
    this.raw.push(data);
  }
  close(code: number): void {
    this.closedWith = code;
  }
  get frames(): ServerFrame[] {
    return this.raw.map((d) => {
      if (this.codec === 'json') return JSON.parse(String(d)) as ServerFrame;
      if (typeof d === 'string') throw new Error('a text write on a MessagePack session');
      const parsed = parseMsgpack(d);
      if (!parsed.ok) throw new Error(parsed.reason);
      return parsed.value as ServerFrame;
    });
  }
}

let gateway: Gateway;
let handler: FrameHandler;

beforeEach(async () => {
  const options = withDefaults({ nodeId: 'n1', logLevel: 'silent' });
  const metrics = new Metrics({ node: 'n1' });
  gateway = new Gateway('n1', options, new MemoryBroker(), new InterestRouting(), metrics, pino({ level: 'silent' }));
  await gateway.start();
  handler = new FrameHandler(gateway, metrics, options.limits.maxSubscriptions);
});
afterEach(() => gateway.close());

async function open(user: string, codec: WireCodec, fast = false): Promise<{ s: Session; t: Recorder }> {
  const t = new Recorder(codec, fast);
  const s = gateway.open({ user, grants: [], transport: t, codec });
  await vi.waitUntil(() => t.raw.length > 0, { timeout: 1000, interval: 5 });
  expect(t.frames[0]).toMatchObject({ type: 'welcome', user });
  return { s, t };
}

async function subscribe(s: Session, t: Recorder, channel: string, id: number): Promise<void> {
  const frame = { type: 'subscribe' as const, id, channel };
  if (s.codec === 'msgpack') handler.receive(s, Buffer.from(encodeClientFrameBinary(frame)), true);
  else handler.receive(s, Buffer.from(JSON.stringify(frame)), false);
  await vi.waitUntil(() => t.frames.some((f) => f.type === 'reply' && f.id === id), { timeout: 1000, interval: 5 });
}

describe('a session on the MessagePack codec', () => {
  it('writes every frame as MessagePack bytes: welcome, replies, errors, disconnect', async () => {
    const { s, t } = await open('alice', 'msgpack');
    expect(s.codec).toBe('msgpack');
    expect(t.raw.every((d) => Buffer.isBuffer(d))).toBe(true);
    handler.receive(s, Buffer.from(encodeClientFrameBinary({ type: 'ping', id: 3 })), true);
    await s.settled;
    expect(t.frames.at(-1)).toEqual({ type: 'pong', id: 3 });
    s.disconnect(4100, 'draining', true);
    expect(t.frames.at(-1)).toEqual({ type: 'disconnect', code: 4100, reason: 'draining', reconnect: true });
    expect(t.closedWith).toBe(4100);
    expect(t.raw.every((d) => Buffer.isBuffer(d))).toBe(true);
  });

  it('a JSON session is unchanged: text JSON', async () => {
    const { s, t } = await open('bob', 'json');
    expect(s.codec).toBe('json');
    expect(typeof t.raw[0]).toBe('string');
  });

  it('refuses a text frame as a JSON session refuses a binary one, and counts it as malformed', async () => {
    const { s, t } = await open('alice', 'msgpack');
    handler.receive(s, Buffer.from(JSON.stringify({ type: 'ping', id: 1 })), false);
    await s.settled;
    expect(t.frames.at(-1)).toMatchObject({ type: 'error', error: { code: 'bad_request', message: expect.stringMatching(/text frames are not supported/) } });
    for (let i = 0; i < 10; i++) handler.receive(s, Buffer.from('{}'), false);
    await s.settled;
    expect(t.closedWith).toBe(4008);

    const json = await open('bob', 'json');
    handler.receive(json.s, Buffer.from(encodeClientFrameBinary({ type: 'ping', id: 1 })), true);
    await json.s.settled;
    expect(json.t.frames.at(-1)).toMatchObject({ type: 'error', error: { message: expect.stringMatching(/binary frames are not supported/) } });
  });

  it('answers hostile binary frames as the JSON codec would, to the id when there is one', async () => {
    const { s, t } = await open('alice', 'msgpack');
    let deep: unknown = 1;
    for (let i = 0; i < 50; i++) deep = { d: deep };
    handler.receive(s, Buffer.from(encode({ type: 'publish', id: 4, channel: 'chat:a', data: deep })), true);
    handler.receive(s, Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]), true);
    await s.settled;
    expect(t.frames.slice(-2)).toEqual([
      { type: 'reply', id: 4, error: { code: 'bad_request', message: 'frame nests deeper than 32 levels' } },
      { type: 'error', error: { code: 'bad_request', message: expect.stringMatching(/^frame is not valid MessagePack/) } },
    ]);
    expect(t.closedWith).toBeUndefined();
  });
});

describe('fan-out', () => {
  it('encodes a publication once for all its MessagePack subscribers, and writes JSON to the others', async () => {
    const a = await open('a', 'msgpack');
    const b = await open('b', 'msgpack');
    const c = await open('c', 'json');
    for (const [i, x] of [a, b, c].entries()) await subscribe(x.s, x.t, 'chat:room', 10 + i);
    const before = [a, b, c].map((x) => x.t.raw.length);
    await gateway.publish('chat:room', { hello: 'all' }, { from: 'a' });
    await vi.waitUntil(() => c.t.raw.length > before[2]!, { timeout: 1000, interval: 5 });
    const [wa, wb, wc] = [a, b, c].map((x, i) => x.t.raw[before[i]!]);
    expect(Buffer.isBuffer(wa)).toBe(true);
    expect(wb).toBe(wa); // the same bytes object: encoded once
    expect(JSON.parse(String(wc))).toMatchObject({ type: 'message', channel: 'chat:room', data: { hello: 'all' }, from: 'a' });
    const mp = parseMsgpack(wa as Buffer);
    expect(mp.ok && mp.value).toEqual(JSON.parse(String(wc)));
  });

  it('never encodes MessagePack for a publication whose subscribers all speak JSON', async () => {
    const c = await open('c', 'json', true);
    await subscribe(c.s, c.t, 'chat:json-only', 1);
    await gateway.publish('chat:json-only', { n: 1 }, { from: 'c' });
    await vi.waitUntil(() => c.t.outgoing.length > 0, { timeout: 1000, interval: 5 });
    expect(c.t.outgoing).toHaveLength(1);
    expect(c.t.outgoing[0]?.binary).toBeUndefined();
  });

  it('sends a recovered backlog that did not fit the reply as MessagePack message frames', async () => {
    const t = new Recorder('msgpack');
    const s = new Session({ id: 's1', user: 'u', grants: [], transport: t, limits: DEFAULT_LIMITS, now: 0, onClosed: () => undefined, codec: 'msgpack' });
    const rest: Publication[] = [1, 2, 3].map((i) => ({ channel: 'news', data: { i }, offset: i, epoch: 'e' }));
    s.begin('news');
    await s.ready('news', { offset: 3, epoch: 'e' }, () => s.send({ type: 'reply', id: 1, result: {} }), rest);
    expect(t.frames).toEqual([{ type: 'reply', id: 1, result: {} }, ...rest.map((p) => ({ type: 'message', ...p }))]);
  });
});
