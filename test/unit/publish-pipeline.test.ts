/**
 * A connection's publishes go to the broker without waiting for each other,
 * except on the same channel, where their order is kept: one publishing
 * connection is not limited to one broker round trip per message.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BrokerPublication, Idempotency, PublishReceipt, Route } from '../../src/brokers/broker.js';
import type { HistoryPolicy } from '../../src/brokers/history.js';
import { MemoryBroker } from '../../src/brokers/memory/memory-broker.js';
import type { ServerFrame } from '../../src/protocol/index.js';
import { FrameHandler } from '../../src/server/core/frame-handler.js';
import { Gateway } from '../../src/server/core/gateway.js';
import { Session, type Transport } from '../../src/server/core/session.js';
import { Metrics } from '../../src/server/metrics.js';
import { DEFAULT_LIMITS, withDefaults } from '../../src/server/options.js';
import { InterestRouting } from '../../src/server/routing/strategies.js';
import { sleep } from '../helpers/wait.js';

class Recorder implements Transport {
  readonly frames: ServerFrame[] = [];
  bufferedAmount = 0;
  send(data: Buffer | string): void {
    this.frames.push(JSON.parse(String(data)) as ServerFrame);
  }
  close(): void {}
}

function session(): Session {
  return new Session({ id: 's', user: 'u', grants: [], transport: new Recorder(), limits: DEFAULT_LIMITS, now: 0, onClosed: () => undefined });
}

/** A promise and the functions that settle it. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('Session.publishInOrder', () => {
  it('starts publishes on different channels at once', async () => {
    const s = session();
    const started: string[] = [];
    const gates = [deferred<number>(), deferred<number>()];
    s.publishInOrder('a', () => (started.push('a'), gates[0]!.promise));
    s.publishInOrder('b', () => (started.push('b'), gates[1]!.promise));
    await vi.waitUntil(() => started.length >= 2, { timeout: 1000, interval: 5 });
    expect(started).toEqual(['a', 'b']);
  });

  it('starts a publish on a channel only after the earlier one there settled, even when it failed', async () => {
    const s = session();
    const started: number[] = [];
    const gates = [deferred<number>(), deferred<number>(), deferred<number>()];
    const results = gates.map((g, i) => s.publishInOrder('a', () => (started.push(i), g.promise)));
    // A pause: the later publishes must not start while the first is at the broker.
    await sleep(0);
    expect(started).toEqual([0]);
    gates[0]!.reject(new Error('broker down'));
    await expect(results[0]).rejects.toThrow('broker down');
    await vi.waitUntil(() => started.length >= 2, { timeout: 1000, interval: 5 });
    // A pause as well: the publish after it must not start meanwhile.
    await sleep(0);
    expect(started).toEqual([0, 1]);
    gates[1]!.resolve(1);
    await expect(results[1]).resolves.toBe(1);
    await vi.waitUntil(() => started.length >= 3, { timeout: 1000, interval: 5 });
    // A pause as well: the publish after it must not start meanwhile.
    await sleep(0);
    expect(started).toEqual([0, 1, 2]);
    gates[2]!.resolve(2);
    await expect(results[2]).resolves.toBe(2);
  });

  it('refuses past 1000 publishes in flight, and accepts again once they settle', async () => {
    const s = session();
    const gate = deferred<number>();
    const inFlight: Array<Promise<number> | undefined> = [];
    for (let i = 0; i < 1000; i++) inFlight.push(s.publishInOrder(`c${i}`, () => gate.promise));
    for (const p of inFlight) expect(p).toBeDefined();
    expect(s.publishInOrder('one-more', () => gate.promise)).toBeUndefined();
    gate.resolve(0);
    // Settled: the session counts a publish done before its caller sees the result.
    await Promise.all(inFlight);
    expect(s.publishInOrder('one-more', () => Promise.resolve(1))).toBeDefined();
  });
});

/** The in-process broker, with every publish held until the test lets it go. */
class HeldBroker extends MemoryBroker {
  inFlight = 0;
  maxInFlight = 0;
  private readonly waiting: Array<() => void> = [];

  override async publish(pub: Omit<BrokerPublication, 'offset' | 'epoch'>, history: HistoryPolicy | null, route?: Route, once?: Idempotency): Promise<PublishReceipt> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise<void>((r) => this.waiting.push(r));
    this.inFlight--;
    return super.publish(pub, history, route, once);
  }

  releaseAll(): void {
    for (const r of this.waiting.splice(0)) r();
  }
}

describe('publish and send frames', () => {
  let gateway: Gateway | undefined;
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });

  it('are at the broker together from one connection, and a channel still gets its messages in the order sent', async () => {
    const broker = new HeldBroker();
    const options = withDefaults({ nodeId: 'n1', logLevel: 'silent', insecure: true });
    const metrics = new Metrics({ node: 'n1' });
    gateway = new Gateway('n1', options, broker, new InterestRouting(), metrics, pino({ level: 'silent' }));
    await gateway.start();
    const handler = new FrameHandler(gateway, metrics, options.limits.maxSubscriptions);
    const t = new Recorder();
    const s = gateway.open({ user: 'pub', grants: [], transport: t });
    await vi.waitUntil(() => t.frames.length > 0, { timeout: 2_000, interval: 5 }).catch(() => undefined); // the assertion below says what is missing
    const frame = (f: unknown) => handler.receive(s, Buffer.from(JSON.stringify(f)), false);
    // 10 users, 3 sends each: 30 frames.
    for (let round = 0; round < 3; round++) for (let u = 0; u < 10; u++) frame({ type: 'send', id: round * 10 + u, user: `u${u}`, data: round });
    await vi.waitUntil(() => broker.inFlight >= 10, { timeout: 2_000, interval: 5 }).catch(() => undefined); // the assertion below says what is missing
    // One per user at a time: the second send to u0 waits for the first.
    expect(broker.inFlight).toBe(10);
    for (let i = 0; i < 3; i++) {
      broker.releaseAll();
      await vi.waitUntil(() => t.frames.filter((f) => f.type === 'reply').length >= (i + 1) * 10, { timeout: 2_000, interval: 5 }).catch(() => undefined); // the assertion below says what is missing
    }
    const replies = t.frames.filter((f): f is Extract<ServerFrame, { type: 'reply' }> => f.type === 'reply');
    expect(replies).toHaveLength(30);
    expect(broker.maxInFlight).toBe(10);
    for (let u = 0; u < 10; u++) {
      const page = await broker.store.history(`user:u${u}`, { since: 0, limit: 10 }, { size: 1000, ttlMs: 60_000 });
      expect(page.messages.map((m) => m.data)).toEqual([0, 1, 2]);
    }
  });
});

describe('back-pressure on a busy publisher', () => {
  let gateway: Gateway | undefined;
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });

  it('stops reading the client at 128 publishes in flight and reads again at 64, refusing nothing', async () => {
    const broker = new HeldBroker();
    const options = withDefaults({ nodeId: 'n1', logLevel: 'silent', insecure: true, limits: { maxMessagesPerSecond: 100_000 } });
    const metrics = new Metrics({ node: 'n1' });
    gateway = new Gateway('n1', options, broker, new InterestRouting(), metrics, pino({ level: 'silent' }));
    await gateway.start();
    const handler = new FrameHandler(gateway, metrics, options.limits.maxSubscriptions);
    const events: string[] = [];
    const t = Object.assign(new Recorder(), {
      paused: false,
      pause(this: Recorder & { paused: boolean }) {
        this.paused = true;
        events.push('pause');
      },
      resume(this: Recorder & { paused: boolean }) {
        this.paused = false;
        events.push('resume');
      },
    });
    const s = gateway.open({ user: 'pub', grants: [], transport: t });
    await vi.waitUntil(() => t.frames.length > 0, { timeout: 2_000, interval: 5 });
    // A client that writes until the node stops reading it: one frame per channel, each held at the broker.
    let sent = 0;
    while (!t.paused && sent < 1000) {
      handler.receive(s, Buffer.from(JSON.stringify({ type: 'publish', id: sent, channel: `c${sent}`, data: sent })), false);
      sent++;
      if (sent % 16 === 0) await sleep(0);
    }
    await vi.waitUntil(() => broker.inFlight >= 128, { timeout: 2_000, interval: 5 });
    expect(events).toEqual(['pause']);
    expect(sent).toBeLessThanOrEqual(144);
    broker.releaseAll();
    await vi.waitUntil(() => t.frames.filter((f) => f.type === 'reply').length >= sent, { timeout: 2_000, interval: 5 });
    expect(events).toEqual(['pause', 'resume']);
    expect(t.frames.filter((f) => f.type === 'reply' && 'error' in f)).toEqual([]);
  });
});
