/**
 * Hostile frames (issue 6), fuzzed with fast-check: first against the core
 * (many runs, a frozen clock where limits are involved), then over real
 * WebSockets to an in-process node while a well-behaved client keeps being
 * served. Every input must get what docs/protocol.md promises, the node
 * must never answer `internal`, and no per-connection state may outlive
 * its connection.
 */
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ServerFrame } from '../../src/protocol/index.js';
import type { SwitchboardNode } from '../../src/server/node.js';
import { useNodes } from '../helpers/fixture.js';
import { RawClient } from '../helpers/raw-client.js';
import { breach, hostileInput, invalidChannel, nestedJson, owed, validChannel, type Input } from './arbitraries.js';
import { Core, type Conn } from './core.js';
import { internalErrors, watchProcess } from './watch.js';
import { sleep } from '../helpers/wait.js';

/** Ids of fence pings: far above any id the generators make, and never reused within the file. */
const SENTINEL = 9_000_000_000_000_000;
let fences = 0;
const nextFence = () => SENTINEL + fences++;
const isDelivery = (f: ServerFrame) => f.type === 'message' || (f.type === 'ping' && !('id' in f));

const watch = watchProcess();
afterEach(() => {
  expect(watch.problems()).toEqual([]);
});

// ---- on the core ------------------------------------------------------------

/** Frames a core session got for each input, using a `ping` after each as a fence (replies come in order). */
async function exchange(core: Core, conn: Conn, inputs: Input[]): Promise<ServerFrame[][]> {
  const answers: ServerFrame[][] = [];
  for (const input of inputs) {
    const start = conn.rec.frames.length;
    if (input.kind === 'text') core.receive(conn, input.text);
    else core.receive(conn, Buffer.from(input.bytes), true);
    const fence = nextFence();
    core.receive(conn, JSON.stringify({ type: 'ping', id: fence }));
    const isFence = (f: ServerFrame) => f.type === 'pong' && f.id === fence;
    await vi.waitUntil(() => conn.session.closed || conn.rec.frames.some(isFence), { timeout: 2000, interval: 1 });
    const end = conn.rec.frames.findIndex(isFence);
    answers.push(conn.rec.frames.slice(start, end < 0 ? undefined : end).filter((f) => !isDelivery(f)));
    if (conn.session.closed) break;
  }
  return answers;
}

const cores: Core[] = [];
/** A core whose heartbeat stays out of the way (the clock is frozen or jumps in some tests). */
async function core(opts: Parameters<typeof Core.start>[0] = {}): Promise<Core> {
  const c = await Core.start({ ping: 3600, pongTimeout: 3600, ...opts });
  cores.push(c);
  return c;
}
afterAll(async () => {
  await Promise.all(cores.splice(0).map((c) => c.close()));
});

/** What an idle core holds: nothing per connection. */
const EMPTY = { sessions: 0, subscriptions: 0, localChannels: 0, brokerSubscriptions: 0, positions: 0 };

/** Inputs sure to be malformed (the decoder refuses them), each of a different kind. */
const malformed: fc.Arbitrary<Input> = fc.oneof(
  fc.string({ maxLength: 30 }).filter((s) => { try { JSON.parse(s); return false; } catch { return true; } }).map((text): Input => ({ kind: 'text', text })),
  fc.jsonValue({ maxDepth: 2 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)).map((v): Input => ({ kind: 'text', text: JSON.stringify(v) })),
  fc.record({ type: fc.constantFrom('nope', 'SUBSCRIBE', ''), id: fc.nat() }).map((f): Input => ({ kind: 'text', text: JSON.stringify(f) })),
  fc.tuple(fc.nat(), invalidChannel).map(([id, channel]): Input => ({ kind: 'text', text: JSON.stringify({ type: 'subscribe', id, channel }) })),
  fc.integer({ min: 33, max: 500 }).map((d): Input => ({ kind: 'text', text: `{"type":"ping","id":1,"x":${nestedJson(d)}}` })),
  fc.uint8Array({ maxLength: 32 }).map((bytes): Input => ({ kind: 'binary', bytes })),
);

/** Inputs that are well formed, even when refused (forbidden, already subscribed): never counted as abuse. */
const wellFormed: fc.Arbitrary<Input> = fc.oneof(
  fc.nat().map((id): Input => ({ kind: 'text', text: JSON.stringify({ type: 'ping', id }) })),
  fc.nat().map((id): Input => ({ kind: 'text', text: JSON.stringify({ type: 'subscribe', id, channel: 'user:someone-else' }) })),
  fc.nat().map((id): Input => ({ kind: 'text', text: JSON.stringify({ type: 'unsubscribe', id, channel: 'user:fuzzer' }) })),
  fc.tuple(fc.nat(), validChannel).map(([id, channel]): Input => ({ kind: 'text', text: JSON.stringify({ type: 'publish', id, channel, data: { id } }) })),
);

/** Subscribe and unsubscribe frames (with a usable id) may draw on their own budget (--max-subscribes-per-second), not on the frame rate. */
function changesSubscriptions(i: Input): boolean {
  const o = owed(i);
  return o.kind === 'reply' && (o.type === 'subscribe' || o.type === 'unsubscribe');
}

describe('the frame handler, fuzzed on the core', () => {
  it('answers every input as owed (one reply per usable id, else one error frame), stays open, and keeps no state after close', async () => {
    const c = await core({ limits: { maxMessagesPerSecond: 1e9 } });
    expect(c.state()).toEqual(EMPTY);
    await fc.assert(
      fc.asyncProperty(fc.array(hostileInput, { minLength: 1, maxLength: 10 }), async (inputs) => {
        const conn = await c.open('fuzzer');
        try {
          const answers = await exchange(c, conn, inputs);
          expect(conn.session.closed, `closed with ${JSON.stringify(conn.rec.closedWith)}`).toBe(false);
          inputs.forEach((input, i) => expect(breach(input, answers[i] ?? []), JSON.stringify(input)).toBeNull());
        } finally {
          conn.session.gone();
        }
        expect(c.state()).toEqual(EMPTY);
      }),
      { numRuns: 1000 },
    );
    expect(await internalErrors(c.metrics)).toBe(0);
  });

  describe('with a frozen clock', () => {
    let clock = Date.now();
    beforeAll(() => {
      vi.spyOn(Date, 'now').mockImplementation(() => clock);
    });
    afterAll(() => {
      vi.restoreAllMocks();
    });

    it('closes with 4008 (reconnect: false) at the 11th malformed frame within 10 s, never for refused well-formed ones', async () => {
      const c = await core({ limits: { maxMessagesPerSecond: 1e9 } });
      const step = fc.oneof(
        malformed.map((input) => ({ malformed: true, input })),
        wellFormed.map((input) => ({ malformed: false, input })),
        fc.constant('pause' as const),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), async (steps) => {
          const conn = await c.open('fuzzer');
          let count = 0;
          try {
            for (const s of steps) {
              if (s === 'pause') {
                clock += 10_000;
                count = 0;
                continue;
              }
              const [got = []] = await exchange(c, conn, [s.input]);
              if (s.malformed) count++;
              if (count > 10) {
                expect(got).toEqual([{ type: 'disconnect', code: 4008, reason: expect.any(String), reconnect: false }]);
                expect(conn.rec.closedWith?.code).toBe(4008);
                return;
              }
              expect(conn.session.closed).toBe(false);
              expect(breach(s.input, got), JSON.stringify(s.input)).toBeNull();
            }
          } finally {
            conn.session.gone();
          }
        }),
        { numRuns: 150 },
      );
      expect(c.state()).toEqual(EMPTY);
    });

    it('past the message rate answers rate_limited (to the id, if usable), then closes with 4129 after max(10, rate) more', async () => {
      const byRate = new Map<number, Core>();
      const answered = hostileInput.filter((i) => owed(i).kind !== 'quiet' && !changesSubscriptions(i));
      const burst = fc.boolean();
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 10 }), fc.array(answered, { minLength: 1, maxLength: 30 }), burst, async (rate, inputs, inOneTick) => {
          let c = byRate.get(rate);
          if (!c) byRate.set(rate, (c = await core({ limits: { maxMessagesPerSecond: rate } })));
          clock += 3_600_000; // a fresh bucket and fresh windows
          const conn = await c.open('fuzzer');
          const start = conn.rec.frames.length;
          try {
            // All at one instant (the clock is frozen): no token comes back
            // meanwhile. Paced, each input's answer is out before the next
            // arrives; in one tick, nothing queued has run yet.
            for (const input of inputs) {
              if (input.kind === 'text') c.receive(conn, input.text);
              else c.receive(conn, Buffer.from(input.bytes), true);
              if (!inOneTick) await new Promise((r) => setImmediate(r));
            }
            clock += 3_600_000;
            const fence = nextFence();
            c.receive(conn, JSON.stringify({ type: 'ping', id: fence }));
            await vi.waitUntil(() => conn.session.closed || conn.rec.frames.some((f) => f.type === 'pong' && f.id === fence), { timeout: 2000, interval: 1 });
            const got = conn.rec.frames.slice(start).filter((f) => !isDelivery(f) && !(f.type === 'pong' && f.id === fence));
            const closeAt = rate + Math.max(10, rate);
            const disconnect = { type: 'disconnect', code: 4129, reason: expect.any(String), reconnect: true };
            if (inOneTick && inputs.length > closeAt) {
              // An abuse close is immediate: answers still waiting in the queue are not sent.
              expect(got).toEqual([disconnect]);
              return;
            }
            inputs.slice(0, closeAt).forEach((input, i) => {
              const f = got[i];
              if (i < rate) {
                expect(breach(input, f ? [f] : []), JSON.stringify(input)).toBeNull();
                expect(f && 'error' in f ? f.error.code : undefined).not.toBe('rate_limited');
              } else {
                const o = owed(input);
                expect(f).toEqual(
                  o.kind === 'reply'
                    ? { type: 'reply', id: o.id, error: { code: 'rate_limited', message: expect.any(String) } }
                    : { type: 'error', error: { code: 'rate_limited', message: expect.any(String) } },
                );
              }
            });
            if (inputs.length > closeAt) {
              expect(got.slice(closeAt)).toEqual([disconnect]);
              expect(conn.rec.closedWith?.code).toBe(4129);
            } else {
              expect(got).toHaveLength(inputs.length);
              expect(conn.session.closed).toBe(false);
            }
          } finally {
            conn.session.gone();
          }
        }),
        { numRuns: 150 },
      );
      for (const c of byRate.values()) expect(c.state()).toEqual(EMPTY);
    });
  });

  it('keeps to the subscription rules and limit under any sequence of subscribe/unsubscribe (a model check)', async () => {
    const limit = 8;
    const c = await core({ limits: { maxMessagesPerSecond: 1e9, maxSubscribesPerSecond: 1e9, maxSubscriptions: limit } });
    const pool = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'chat:x', 'user:fuzzer', 'user:other'];
    const op = fc.record({ op: fc.constantFrom('subscribe', 'unsubscribe'), channel: fc.constantFrom(...pool) });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        const conn = await c.open('fuzzer');
        const model = new Set<string>();
        try {
          for (const [i, { op: type, channel }] of ops.entries()) {
            const [got = []] = await exchange(c, conn, [{ kind: 'text', text: JSON.stringify({ type, id: i, channel }) }]);
            let want: string | 'result';
            if (type === 'unsubscribe') {
              want = channel === 'user:fuzzer' ? 'bad_request' : 'result';
              model.delete(channel);
            } else if (channel === 'user:fuzzer' || model.has(channel)) want = 'bad_request';
            else if (channel.startsWith('user:')) want = 'forbidden';
            else if (model.size >= limit) want = 'too_large';
            else {
              want = 'result';
              model.add(channel);
            }
            const f = got[0];
            expect(got, `${type} ${channel}`).toHaveLength(1);
            expect(f?.type === 'reply' && ('result' in f ? 'result' : f.error.code)).toBe(want);
          }
          expect(conn.session.subscriptionCount).toBe(model.size);
          expect(c.state().subscriptions).toBe(model.size);
        } finally {
          conn.session.gone();
        }
        expect(c.state()).toEqual(EMPTY);
      }),
      { numRuns: 150 },
    );
  });

  it('refuses subscriptions past the default limit (1000) with too_large and frees all of them on close', async () => {
    const c = await core({ limits: { maxMessagesPerSecond: 1e9, maxSubscribesPerSecond: 1e9 } });
    const conn = await c.open('collector');
    const start = conn.rec.frames.length;
    for (let i = 0; i < 1500; i++) {
      c.receive(conn, JSON.stringify({ type: 'subscribe', id: i, channel: `many-${i}` }));
      // Batches of 100: more than 1000 waiting frames is another limit (next test).
      if (i % 100 === 99) await vi.waitUntil(() => conn.rec.frames.length - start > i, { timeout: 5000, interval: 1 });
    }
    await vi.waitUntil(() => conn.rec.frames.length - start >= 1500, { timeout: 10_000, interval: 1 });
    const replies = conn.rec.frames.slice(start).filter((f) => f.type === 'reply');
    expect(replies.filter((f) => 'result' in f)).toHaveLength(1000);
    expect(replies.filter((f) => 'error' in f && f.error.code === 'too_large')).toHaveLength(500);
    expect(c.state()).toMatchObject({ subscriptions: 1000, localChannels: 1001 });
    conn.session.gone();
    expect(c.state()).toEqual(EMPTY);
  });
});

describe('the queue of waiting frames', () => {
  it('answers rate_limited at once, to each id, past 1000 frames waiting, and every frame exactly once', async () => {
    const c = await core({ limits: { maxMessagesPerSecond: 1e9 } });
    const conn = await c.open('burst');
    const start = conn.rec.frames.length;
    // One tick: nothing queued can run in between.
    for (let id = 0; id < 1500; id++) c.receive(conn, JSON.stringify({ type: 'ping', id }));
    await vi.waitUntil(() => conn.rec.frames.length - start >= 1500, { timeout: 10_000, interval: 1 });
    const got = conn.rec.frames.slice(start);
    expect(got.filter((f) => f.type === 'pong').map((f) => (f.type === 'pong' ? f.id : -1))).toEqual([...Array(1000).keys()]);
    const limited = got.filter((f) => f.type === 'reply' && 'error' in f && f.error.code === 'rate_limited');
    expect(limited.map((f) => (f.type === 'reply' ? f.id : -1)).sort((a, b) => a - b)).toEqual([...Array(500).keys()].map((i) => 1000 + i));
    expect(got).toHaveLength(1500);
    expect(conn.session.closed).toBe(false);
    conn.session.gone();
    expect(c.state()).toEqual(EMPTY);
  });
});

// ---- over real WebSockets -----------------------------------------------------

const { node: startNode, connect } = useNodes();

/**
 * A well-behaved pair of clients, run while the fuzz goes on: one publishes
 * to a channel, the other must get every message in order, and pings must
 * keep being answered quickly.
 */
function bystander(n: SwitchboardNode): { stop: () => Promise<{ sent: number; maxRttMs: number }> } {
  let running = true;
  const done = (async () => {
    const pub = await connect(n, 'user=calm-publisher');
    const sub = await connect(n, 'user=calm-reader');
    expect(await sub.request({ type: 'subscribe', channel: 'calm' })).toHaveProperty('result');
    let sent = 0;
    let maxRttMs = 0;
    while (running && sent < 10_000) {
      const t0 = performance.now();
      const reply = await pub.request({ type: 'publish', channel: 'calm', data: sent });
      expect(reply).toHaveProperty('result');
      await ping(pub);
      maxRttMs = Math.max(maxRttMs, performance.now() - t0);
      sent++;
      // The calm client's pace while the flood goes on.
      await sleep(10);
    }
    await sub.waitFor((f) => f.type === 'message' && f.channel === 'calm', sent);
    expect(sub.messages('calm').map((m) => m.data)).toEqual([...Array(sent).keys()]);
    return { sent, maxRttMs };
  })();
  return {
    stop: async () => {
      running = false;
      return done;
    },
  };
}

/** A `ping` answered by its `pong`. */
let pings = 0;
async function ping(c: RawClient): Promise<void> {
  const id = 5_000_000_000 + pings++;
  c.send({ type: 'ping', id });
  await c.next((f) => f.type === 'pong' && f.id === id);
}

/** Send `inputs` on a raw client, each followed by a fence ping; the frames each got. */
async function exchangeRaw(c: RawClient, inputs: Input[]): Promise<ServerFrame[][]> {
  const answers: ServerFrame[][] = [];
  for (const input of inputs) {
    const start = c.frames.length;
    if (input.kind === 'text') c.send(input.text);
    else c.ws.send(input.bytes, { binary: true });
    const id = nextFence();
    c.send({ type: 'ping', id });
    const closed = c.closed.then((cl): never => {
      throw new Error(`closed with ${cl.code} after ${JSON.stringify(input).slice(0, 200)}`);
    });
    const fence = await Promise.race([c.next((f) => f.type === 'pong' && f.id === id, 5000), closed]);
    answers.push(c.frames.slice(start, c.frames.indexOf(fence)).filter((f) => !isDelivery(f)));
  }
  return answers;
}

async function nodeState(n: SwitchboardNode): Promise<{ connections: number; subscriptions: number }> {
  const res = await fetch(n.url('/api/nodes'), { headers: { authorization: 'Bearer test-key' } });
  const { nodes } = (await res.json()) as { nodes: Array<{ id: string; connections: number; subscriptions: number }> };
  const me = nodes.find((x) => x.id === n.id);
  if (!me) throw new Error('node not listed');
  return me;
}

describe('the frame handler, fuzzed over WebSockets', () => {
  let n: SwitchboardNode;
  /** Same, with 4 KiB frames: size limits are quick to reach. */
  let small: SwitchboardNode;
  beforeAll(async () => {
    n = await startNode({ limits: { maxMessagesPerSecond: 1e6, maxSubscribesPerSecond: 1e6, maxConnectionsPerIpPerSecond: 0 } });
    small = await startNode({ limits: { maxMessagesPerSecond: 1e6, maxConnectionsPerIpPerSecond: 0, maxFrameBytes: 4096 } });
  });

  it('answers every input as owed while a well-behaved client is served in parallel', async () => {
    const calm = bystander(n);
    let stopped: Awaited<ReturnType<typeof calm.stop>> | undefined;
    try {
      await fc.assert(
      fc.asyncProperty(fc.array(hostileInput, { minLength: 1, maxLength: 10 }), async (inputs) => {
        const c = await RawClient.connect(`ws://127.0.0.1:${n.port}/ws?user=fuzzer`);
        try {
          const answers = await exchangeRaw(c, inputs);
          inputs.forEach((input, i) => expect(breach(input, answers[i] ?? []), JSON.stringify(input)).toBeNull());
        } finally {
          await c.close();
        }
      }),
      { numRuns: 150 },
      );
    } finally {
      stopped = await calm.stop();
    }
    const { sent, maxRttMs } = stopped;
    expect(sent).toBeGreaterThan(5);
    // Generous: other test files share the two cores.
    expect(maxRttMs).toBeLessThan(2000);
  });

  it('closes a text frame of invalid UTF-8 with 1007 (WebSocket layer), and only that connection', async () => {
    const invalidUtf8 = fc.uint8Array({ minLength: 1, maxLength: 64 }).filter((b) => {
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(b);
        return false;
      } catch {
        return true;
      }
    });
    const other = await connect(n, 'user=neighbour');
    await fc.assert(
      fc.asyncProperty(invalidUtf8, async (bytes) => {
        const c = await RawClient.connect(`ws://127.0.0.1:${n.port}/ws?user=fuzzer`);
        c.ws.send(bytes, { binary: false });
        expect((await c.closed).code).toBe(1007);
        expect(c.frames.some((f) => f.type === 'disconnect')).toBe(false);
      }),
      { numRuns: 20 },
    );
    await ping(other);
  });

  it('closes a frame over --max-frame-bytes with 1009, and answers one at the limit', async () => {
    const limit = small.options.limits.maxFrameBytes;
    const sized = (bytes: number) => {
      const head = '{"type":"publish","id":1,"channel":"big","data":"';
      return head + 'x'.repeat(bytes - head.length - 2) + '"}';
    };
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 100, max: 4 * limit }), async (bytes) => {
        const c = await RawClient.connect(`ws://127.0.0.1:${small.port}/ws?user=fuzzer`);
        try {
          c.send(sized(bytes));
          if (bytes > limit) {
            expect((await c.closed).code).toBe(1009);
          } else {
            expect(await c.next((f) => f.type === 'reply' && f.id === 1)).toHaveProperty('result');
          }
        } finally {
          await c.close();
        }
      }),
      { numRuns: 20, examples: [[limit], [limit + 1]] },
    );
  });

  it('answers 10^5 levels of nesting with bad_request when the frame fits, and 1009 when it does not', async () => {
    const big = await startNode({ limits: { maxFrameBytes: 1024 * 1024 } });
    const c = await connect(big, 'user=nester');
    const depth = 100_000;
    c.send(`{"type":"publish","id":1,"channel":"a","data":${nestedJson(depth)}}`);
    c.send(`{"type":"ping","id":2,"x":${nestedJson(depth, 'object')}}`);
    c.send(nestedJson(depth, 'mixed'));
    c.send({ type: 'ping', id: 3 });
    await c.next((f) => f.type === 'pong' && f.id === 3);
    const answers = c.frames.filter((f) => f.type === 'reply' || f.type === 'error');
    expect(answers).toEqual([
      { type: 'reply', id: 1, error: { code: 'bad_request', message: expect.stringContaining('deeper than 32') } },
      { type: 'reply', id: 2, error: { code: 'bad_request', message: expect.stringContaining('deeper than 32') } },
      { type: 'error', error: { code: 'bad_request', message: expect.any(String) } },
    ]);
    const tooBig = await connect(n, 'user=nester');
    tooBig.send(`{"type":"publish","id":1,"channel":"a","data":${nestedJson(depth)}}`);
    expect((await tooBig.closed).code).toBe(1009);
  });

  it('refuses subscriptions past the limit over a socket, and the node holds none after the close', async () => {
    const c = await connect(n, 'user=collector');
    const start = c.frames.length;
    for (let i = 0; i < 1100; i++) {
      c.send({ type: 'subscribe', id: i, channel: `sock-${i}` });
      // Batches of 100: more than 1000 waiting frames would be answered rate_limited.
      if (i % 100 === 99) await c.waitFor((f) => f.type === 'reply', i + 1);
    }
    const replies = c.frames.slice(start).filter((f) => f.type === 'reply');
    expect(replies.filter((f) => 'error' in f && f.error.code === 'too_large')).toHaveLength(100);
    expect((await nodeState(n)).subscriptions).toBeGreaterThanOrEqual(1000);
    await c.close();
    const state = await vi
      .waitUntil(
        async () => {
          const s = await nodeState(n);
          if (s.connections === 0 && s.subscriptions === 0) return s;
        },
        { timeout: 5000, interval: 20 },
      )
      .catch(() => nodeState(n)); // the assertion below says what is left
    expect(state).toMatchObject({ connections: 0, subscriptions: 0 });
  });

  it('answers ten malformed frames of any kind with bad_request, and closes with 4008 at the eleventh', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(malformed, { minLength: 11, maxLength: 11 }), async (inputs) => {
        const c = await RawClient.connect(`ws://127.0.0.1:${n.port}/ws?user=fuzzer`);
        const answers = await exchangeRaw(c, inputs.slice(0, 10));
        inputs.slice(0, 10).forEach((input, i) => {
          expect(breach(input, answers[i] ?? [])).toBeNull();
          expect(answers[i]?.[0]).toMatchObject({ error: { code: 'bad_request' } });
        });
        const last = inputs[10];
        if (last?.kind === 'text') c.send(last.text);
        else if (last) c.ws.send(last.bytes, { binary: true });
        expect((await c.closed).code).toBe(4008);
        expect(c.frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4008, reconnect: false });
      }),
      { numRuns: 10 },
    );
  });

  it('closes a client that floods past the rate with 4129 after rate_limited answers', async () => {
    const slow = await startNode({ limits: { maxMessagesPerSecond: 20, maxConnectionsPerIpPerSecond: 0 } });
    // Well-formed first, on the frame rate, so that the frames admitted before the limit cannot add up to 4008.
    const flood = fc.tuple(fc.array(wellFormed.filter((i) => !changesSubscriptions(i)), { minLength: 25, maxLength: 25 }), fc.array(hostileInput, { minLength: 60, maxLength: 100 }));
    await fc.assert(
      fc.asyncProperty(flood, async ([first, rest]) => {
        const inputs = [...first, ...rest];
        const c = await RawClient.connect(`ws://127.0.0.1:${slow.port}/ws?user=flood`);
        for (const input of inputs) {
          if (input.kind === 'text') c.send(input.text);
          else c.ws.send(input.bytes, { binary: true });
        }
        expect((await c.closed).code).toBe(4129);
        expect(c.frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4129, reconnect: true });
        // Whatever was answered before the close was answered with a documented code.
        for (const f of c.frames) if ('error' in f) expect(['bad_request', 'forbidden', 'rate_limited']).toContain(f.error.code);
      }),
      { numRuns: 5 },
    );
  });

  it('left no connection or subscription behind and never answered internal', async () => {
    const state = await vi
      .waitUntil(
        async () => {
          const s = await nodeState(n);
          if (s.connections === 0) return s;
        },
        { timeout: 5000, interval: 20 },
      )
      .catch(() => nodeState(n)); // the assertion below says what is left
    // The bystanders of the first test are closed after it (fixture), the fuzz clients by each run.
    expect(state).toMatchObject({ connections: 0, subscriptions: 0 });
    const metrics = await (await fetch(n.url('/metrics'))).text();
    expect(metrics).toMatch(/switchboard_errors_total\{[^}]*code="bad_request"[^}]*\} [1-9]/);
    expect(metrics).not.toMatch(/switchboard_errors_total\{[^}]*code="internal"/);
  });
});
