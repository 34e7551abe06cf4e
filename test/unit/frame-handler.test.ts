/**
 * Every error path of the frame handler, without sockets: a session writes
 * to a recording transport; the core runs on the real in-process broker.
 */
import { pino, type Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryBroker } from '../../src/brokers/memory/memory-broker.js';
import type { ServerFrame } from '../../src/protocol/index.js';
import { FrameHandler } from '../../src/server/core/frame-handler.js';
import { Gateway } from '../../src/server/core/gateway.js';
import type { Session, Transport } from '../../src/server/core/session.js';
import { Metrics } from '../../src/server/metrics.js';
import { withDefaults, type NodeOptionsInput } from '../../src/server/options.js';
import { InterestRouting } from '../../src/server/routing/strategies.js';
import { sleep } from '../helpers/wait.js';

class Recorder implements Transport {
  readonly frames: ServerFrame[] = [];
  closedWith: { code: number; reason: string } | undefined;
  bufferedAmount = 0;
  send(data: Buffer | string): void {
    this.frames.push(JSON.parse(String(data)) as ServerFrame);
  }
  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
  }
  last(): ServerFrame | undefined {
    return this.frames.at(-1);
  }
}

let gateway: Gateway;
let handler: FrameHandler;

async function setup(opts: NodeOptionsInput = {}, log: Logger = pino({ level: 'silent' })): Promise<void> {
  const options = withDefaults({ nodeId: 'n1', logLevel: 'silent', ...opts });
  const metrics = new Metrics({ node: 'n1' });
  gateway = new Gateway('n1', options, new MemoryBroker(), new InterestRouting(), metrics, log);
  await gateway.start();
  handler = new FrameHandler(gateway, metrics, options.limits.maxSubscriptions);
}

/** A session that has received its welcome. */
async function session(user = 'alice'): Promise<{ s: Session; t: Recorder }> {
  const t = new Recorder();
  const s = gateway.open({ user, grants: [], transport: t });
  await vi.waitUntil(() => t.frames.length > 0, { timeout: 1000, interval: 5 });
  expect(t.frames[0]).toMatchObject({ type: 'welcome', user });
  return { s, t };
}

async function send(s: Session, frame: unknown): Promise<void> {
  handler.receive(s, Buffer.from(typeof frame === 'string' ? frame : JSON.stringify(frame)), false);
  await s.settled;
}

beforeEach(() => setup());
afterEach(() => {
  vi.restoreAllMocks();
  return gateway.close();
});

describe('malformed frames get bad_request and the connection survives', () => {
  const cases: Array<[string, unknown, number | undefined]> = [
    ['invalid JSON', '{"type": "ping", ', undefined],
    ['a JSON array', '[1,2,3]', undefined],
    ['a JSON string', '"ping"', undefined],
    ['no type', { id: 1 }, 1],
    ['type not a string', { type: 5, id: 2 }, 2],
    ['unknown type', { type: 'teleport', id: 3 }, 3],
    ['subscribe without id', { type: 'subscribe', channel: 'a' }, undefined],
    ['id not an integer', { type: 'ping', id: 'x' }, undefined],
    ['negative id', { type: 'ping', id: -1 }, undefined],
    ['subscribe without channel', { type: 'subscribe', id: 4 }, 4],
    ['channel not a string', { type: 'subscribe', id: 5, channel: 42 }, 5],
    ['channel with a space', { type: 'subscribe', id: 6, channel: 'a b' }, 6],
    ['channel with a slash', { type: 'publish', id: 7, channel: 'a/b', data: 1 }, 7],
    ['channel too long', { type: 'subscribe', id: 8, channel: 'x'.repeat(256) }, 8],
    ['empty channel', { type: 'unsubscribe', id: 9, channel: '' }, 9],
    ['since without epoch', { type: 'subscribe', id: 10, channel: 'a', since: { offset: 1 } }, 10],
    ['since with a float offset', { type: 'subscribe', id: 11, channel: 'a', since: { offset: 1.5, epoch: 'e' } }, 11],
    ['publish without data', { type: 'publish', id: 12, channel: 'a' }, 12],
    ['send without user', { type: 'send', id: 13, data: 1 }, 13],
    ['send to an invalid user', { type: 'send', id: 14, user: 'a b', data: 1 }, 14],
    ['ack without offset', { type: 'ack', channel: 'a' }, undefined],
  ];
  for (const [name, frame, id] of cases) {
    it(name, async () => {
      const { s, t } = await session();
      await send(s, frame);
      const reply = t.last();
      if (id === undefined) expect(reply).toMatchObject({ type: 'error', error: { code: 'bad_request' } });
      else expect(reply).toMatchObject({ type: 'reply', id, error: { code: 'bad_request' } });
      expect(t.closedWith).toBeUndefined();
      await send(s, { type: 'ping', id: 99 });
      expect(t.last()).toEqual({ type: 'pong', id: 99 });
    });
  }

  it('binary frames get an error frame', async () => {
    const { s, t } = await session();
    handler.receive(s, Buffer.from([0xff, 0x00]), true);
    await s.settled;
    expect(t.last()).toMatchObject({ type: 'error', error: { code: 'bad_request', message: expect.stringContaining('binary') } });
    expect(t.closedWith).toBeUndefined();
  });

  it('ten malformed frames within ten seconds close the connection with 4008 (no reconnect)', async () => {
    const { s, t } = await session();
    for (let i = 0; i < 10; i++) await send(s, 'nope');
    expect(t.closedWith).toBeUndefined();
    await send(s, 'nope');
    expect(t.closedWith?.code).toBe(4008);
    expect(t.last()).toMatchObject({ type: 'disconnect', code: 4008, reconnect: false });
    expect(gateway.sessions.has(s)).toBe(false);
  });
});

describe('permissions and state errors', () => {
  it('subscribing twice is bad_request; another user’s personal channel is forbidden; own personal channel cannot be left', async () => {
    const { s, t } = await session();
    await send(s, { type: 'subscribe', id: 1, channel: 'room' });
    expect(t.last()).toMatchObject({ id: 1, result: { channel: 'room', recovered: true } });
    await send(s, { type: 'subscribe', id: 2, channel: 'room' });
    expect(t.last()).toMatchObject({ id: 2, error: { code: 'bad_request' } });
    await send(s, { type: 'subscribe', id: 3, channel: 'user:bob' });
    expect(t.last()).toMatchObject({ id: 3, error: { code: 'forbidden' } });
    await send(s, { type: 'subscribe', id: 4, channel: 'user:alice' });
    expect(t.last()).toMatchObject({ id: 4, error: { code: 'bad_request' } });
    await send(s, { type: 'unsubscribe', id: 5, channel: 'user:alice' });
    expect(t.last()).toMatchObject({ id: 5, error: { code: 'bad_request' } });
  });

  it('subscription limit gives too_large', async () => {
    await gateway.close();
    await setup({ limits: { maxSubscriptions: 2 } });
    const { s, t } = await session();
    await send(s, { type: 'subscribe', id: 1, channel: 'a' });
    await send(s, { type: 'subscribe', id: 2, channel: 'b' });
    await send(s, { type: 'subscribe', id: 3, channel: 'c' });
    expect(t.last()).toMatchObject({ id: 3, error: { code: 'too_large' } });
  });

  it('rate limit gives rate_limited replies, then 4129', async () => {
    await gateway.close();
    await setup({ limits: { maxMessagesPerSecond: 5 } });
    const { s, t } = await session();
    for (let i = 1; i <= 6; i++) handler.receive(s, Buffer.from(JSON.stringify({ type: 'ping', id: i })), false);
    await s.settled;
    expect(t.frames.filter((f) => f.type === 'pong')).toHaveLength(5);
    expect(t.last()).toMatchObject({ type: 'reply', id: 6, error: { code: 'rate_limited' } });
    for (let i = 7; i <= 20; i++) handler.receive(s, Buffer.from(JSON.stringify({ type: 'ping', id: i })), false);
    await s.settled;
    expect(t.closedWith?.code).toBe(4129);
  });
});

describe('subscription changes have their own budget', () => {
  /** `n` frames in one tick: no token comes back meanwhile to speak of (20 per second). */
  const burst = (s: Session, frames: readonly object[]): void => {
    for (const f of frames) handler.receive(s, Buffer.from(JSON.stringify(f)), false);
  };
  const replies = (t: Recorder) => t.frames.filter((f) => f.type === 'reply');
  const limited = (t: Recorder) => replies(t).filter((f) => 'error' in f && f.error.code === 'rate_limited');

  it('takes a whole resubscription of the default 1000 channels, with positions, in one burst, and a second of other frames beside it', async () => {
    const { s, t } = await session();
    for (let i = 0; i < 1000; i++) await gateway.publish(`many-${i}`, i);
    burst(s, [...Array(1000).keys()].map((i) => ({ type: 'subscribe', id: i, channel: `many-${i}`, since: { offset: 0, epoch: 'old' } })));
    burst(s, [...Array(100).keys()].map((i) => ({ type: 'ping', id: 1000 + i })));
    await s.settled;
    const results = replies(t).filter((f) => 'result' in f);
    expect(results).toHaveLength(1000);
    expect(limited(t)).toEqual([]);
    expect(t.frames.filter((f) => f.type === 'pong')).toHaveLength(100);
    expect(s.subscriptionCount).toBe(1000);
    expect(s.closed).toBe(false);
  });

  it('refuses subscribe/unsubscribe churn past the burst with rate_limited, then closes with 4129 naming the limit, and logs it', async () => {
    await gateway.close();
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    await setup({ limits: { maxSubscriptions: 40, maxSubscribesPerSecond: 1 } }, log);
    const { s, t } = await session('churner');
    const churn = (from: number, n: number) =>
      [...Array(n).keys()].map((i) => ({ type: (from + i) % 2 ? 'unsubscribe' : 'subscribe', id: from + i, channel: `c${Math.floor((from + i) / 2)}` }));
    // The clock stands still: no subscribe comes back meanwhile.
    const now = Date.now();
    vi.spyOn(Date, 'now').mockReturnValue(now);
    // Paced, each answered before the next: 40 rounds, each subscribe paying for its unsubscribe.
    for (const f of churn(0, 80)) await send(s, f);
    expect(replies(t).filter((f) => 'result' in f)).toHaveLength(80);
    await send(s, churn(80, 1)[0]);
    expect(t.last()).toMatchObject({ type: 'reply', id: 80, error: { code: 'rate_limited' } });
    // Other frames still pass: they draw on the frame rate.
    await send(s, { type: 'ping', id: 1000 });
    expect(t.last()).toEqual({ type: 'pong', id: 1000 });
    // As many refusals within 10 s as the budget holds (40), then the close.
    burst(s, churn(81, 39));
    await s.settled;
    expect(s.closed).toBe(false);
    expect(limited(t)).toHaveLength(40);
    burst(s, churn(120, 1));
    expect(t.closedWith).toEqual({ code: 4129, reason: expect.stringContaining('--max-subscribes-per-second') });
    expect(t.last()).toMatchObject({ type: 'disconnect', code: 4129, reconnect: true });
    const logged = lines.find((l) => l.msg === 'closed a client that broke a limit');
    expect(logged).toMatchObject({ level: 30, session: s.id, user: 'churner', code: 4129, reason: expect.stringContaining('--max-subscribes-per-second') });
  });

  it('names the frame rate in a 4129 for other frames', async () => {
    await gateway.close();
    await setup({ limits: { maxMessagesPerSecond: 5 } });
    const { s, t } = await session();
    burst(s, [...Array(5 + 11).keys()].map((i) => ({ type: 'ping', id: i })));
    expect(t.closedWith).toEqual({ code: 4129, reason: expect.stringContaining('--max-messages-per-second') });
  });

  it('lets a full resubscription, and leaving all of it, wait their turn when the subscription limit is above the 1000 frames that may wait', async () => {
    await gateway.close();
    await setup({ limits: { maxSubscriptions: 1500 } });
    const { s, t } = await session();
    burst(s, [...Array(1500).keys()].map((i) => ({ type: 'subscribe', id: i, channel: `wide-${i}` })));
    burst(s, [...Array(1500).keys()].map((i) => ({ type: 'unsubscribe', id: 1500 + i, channel: `wide-${i}` })));
    burst(s, [...Array(100).keys()].map((i) => ({ type: 'ping', id: 3000 + i })));
    await s.settled;
    expect(replies(t).filter((f) => 'result' in f)).toHaveLength(3000);
    expect(t.frames.filter((f) => f.type === 'pong')).toHaveLength(100);
    expect(s.subscriptionCount).toBe(0);
  });
});

describe('delivery', () => {
  it('writes a connection past its buffered-bytes limit off with 4101', async () => {
    await gateway.close();
    await setup({ limits: { maxBufferedBytes: 1000 } });
    const { s, t } = await session();
    await send(s, { type: 'subscribe', id: 1, channel: 'feed' });
    t.bufferedAmount = 1001;
    await gateway.publish('feed', 'x');
    expect(t.closedWith?.code).toBe(4101);
    expect(gateway.sessions.has(s)).toBe(false);
  });

  it('does not deliver a message twice when it is both recovered and live', async () => {
    const { s, t } = await session();
    const first = await gateway.publish('dup', 1);
    // Subscribe recovering from before offset 1: the reply carries 1; a replayed live copy must be dropped.
    await send(s, { type: 'subscribe', id: 1, channel: 'dup', since: { offset: 0, epoch: first.epoch } });
    expect(t.last()).toMatchObject({ id: 1, result: { recovered: true, messages: [{ offset: 1, data: 1 }] } });
    const stored = { channel: 'dup', data: 1, offset: 1, epoch: first.epoch };
    expect(s.deliver(stored, Buffer.from(JSON.stringify({ type: 'message', ...stored })))).toBe(false);
    await gateway.publish('dup', 2);
    expect(t.last()).toMatchObject({ type: 'message', channel: 'dup', offset: 2 });
  });
});

describe('subscribing while the broker subscription is still pending', () => {
  /** The in-process broker with a slow `subscribe`, as a remote broker has. */
  class SlowSubscribeBroker extends MemoryBroker {
    override async subscribe(channel: string): Promise<void> {
      // A pause by design: the broker's round trip that the test's publish falls into.
      await sleep(50);
      return super.subscribe(channel);
    }
  }

  it('a second subscriber waits too, so a publication in between is not lost', async () => {
    await gateway.close();
    const options = withDefaults({ nodeId: 'n1', logLevel: 'silent' });
    const metrics = new Metrics({ node: 'n1' });
    gateway = new Gateway('n1', options, new SlowSubscribeBroker(), new InterestRouting(), metrics, pino({ level: 'silent' }));
    await gateway.start();
    handler = new FrameHandler(gateway, metrics, options.limits.maxSubscriptions);
    const a = await session('a');
    const b = await session('b');
    handler.receive(a.s, Buffer.from(JSON.stringify({ type: 'subscribe', id: 1, channel: 'race' })), false);
    handler.receive(b.s, Buffer.from(JSON.stringify({ type: 'subscribe', id: 1, channel: 'race' })), false);
    // Pause, not a wait: the publish must fall inside the broker's 50 ms subscribe.
    await sleep(10);
    // Published after both asked, before the node receives the channel.
    const sent = await gateway.publish('race', 'in between');
    // Both subscribe tasks done: each reply is written and the channel's held messages delivered.
    await Promise.all([a.s.settled, b.s.settled]);
    for (const { t } of [a, b]) {
      const reply = t.frames.find((f) => f.type === 'reply' && f.id === 1) as { result: { offset: number } };
      const live = t.frames.filter((f) => f.type === 'message');
      // Either the reply's position already covers it, or it is delivered live: never neither.
      expect(reply.result.offset >= (sent.offset ?? 0) || live.length === 1).toBe(true);
    }
  });
});
