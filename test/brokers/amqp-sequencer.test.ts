/**
 * The RabbitMQ broker's sequencer alone: pure logic, fake timers, history
 * as an in-memory list. Each publication names its predecessor on this
 * receiver's path (`prev`) and when that was stored (`prevAt`).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BrokerPublication } from '../../src/brokers/broker.js';
import type { Order } from '../../src/brokers/amqp/codec.js';
import { Sequencer, type FilledRange, type SequencerOptions } from '../../src/brokers/amqp/sequencer.js';
import type { Publication } from '../../src/protocol/index.js';

const C = 'room:1';
const E = 'ep1';
/** Server times: every publication here is stored after the horizon unless said otherwise. */
const HORIZON = 1_000_000;

interface Harness {
  seq: Sequencer;
  got: Array<number | undefined>;
  faults: string[];
  fills: Array<[string, number, number]>;
  /** What history holds, per epoch. */
  stored: Map<string, Publication[]>;
  push(offset: number, prev: number, opts?: { epoch?: string; prevAt?: number; at?: number; channel?: string }): void;
}

function harness(options: Partial<SequencerOptions> & { failFills?: number } = {}): Harness {
  const got: Array<number | undefined> = [];
  const faults: string[] = [];
  const fills: Array<[string, number, number]> = [];
  const stored = new Map<string, Publication[]>();
  let failures = options.failFills ?? 0;
  const seq = new Sequencer({
    deliver: (pub) => void got.push(pub.offset),
    fill: async (channel, from, to, limit): Promise<FilledRange> => {
      fills.push([channel, from, to]);
      if (failures > 0) {
        failures--;
        throw new Error('store unreachable');
      }
      const epochs = [...stored.keys()];
      const epoch = epochs.at(-1) ?? '';
      const messages = (stored.get(epoch) ?? []).filter((m) => m.offset! >= from && m.offset! <= to).slice(0, limit);
      return { epoch, messages };
    },
    onFault: (err) => void faults.push(err.message),
    gapMs: 100,
    ...options,
  });
  seq.setHorizon(HORIZON);
  const push: Harness['push'] = (offset, prev, opts = {}) => {
    const epoch = opts.epoch ?? E;
    const pub: BrokerPublication = { channel: opts.channel ?? C, data: offset, offset, epoch, ts: 0 };
    const at = opts.at ?? HORIZON + 10 * offset;
    const order: Order = { prev, prevAt: prev === 0 ? 0 : (opts.prevAt ?? HORIZON + 10 * prev), at };
    seq.push(pub, order);
  };
  return { seq, got, faults, fills, stored, push };
}

function store(h: Harness, epoch: string, offsets: number[], channel = C): void {
  const list = h.stored.get(epoch) ?? [];
  for (const o of offsets) list.push({ channel, data: o, offset: o, epoch });
  h.stored.set(epoch, list);
}

describe('amqp sequencer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('delivers in-order publications at once', () => {
    const h = harness();
    h.seq.prime(C, 0, E);
    for (let o = 1; o <= 5; o++) h.push(o, o - 1);
    expect(h.got).toEqual([1, 2, 3, 4, 5]);
    expect(h.fills).toEqual([]);
    h.seq.close();
  });

  it('holds a later publication until its predecessor arrives', async () => {
    const h = harness();
    h.seq.prime(C, 0, E);
    h.push(1, 0);
    h.push(3, 2);
    h.push(4, 3);
    expect(h.got).toEqual([1]);
    h.push(2, 1);
    expect(h.got).toEqual([1, 2, 3, 4]);
    await vi.advanceTimersByTimeAsync(500);
    expect(h.fills).toEqual([]);
    expect(h.faults).toEqual([]);
    h.seq.close();
  });

  it('skips offsets routed elsewhere: the predecessor on this path is what counts', () => {
    const h = harness();
    h.seq.prime(C, 0, E);
    // offsets 2, 3 and 5 went to other nodes' inboxes
    h.push(1, 0);
    h.push(4, 1);
    h.push(6, 4);
    expect(h.got).toEqual([1, 4, 6]);
    h.seq.close();
  });

  it('fills a gap from history after gapMs, then releases what it held, in order', async () => {
    const h = harness();
    store(h, E, [1, 2, 3, 4, 5]);
    h.seq.prime(C, 1, E);
    h.push(4, 3);
    h.push(5, 4);
    h.push(3, 2);
    expect(h.got).toEqual([]);
    await vi.advanceTimersByTimeAsync(99);
    expect(h.fills).toEqual([]);
    await vi.advanceTimersByTimeAsync(2);
    expect(h.fills).toEqual([[C, 2, 2]]);
    expect(h.got).toEqual([2, 3, 4, 5]);
    expect(h.seq.stats).toMatchObject({ filled: 1, skipped: 0, held: 0 });
    expect(h.faults).toEqual([]);
    // a late copy of what was filled is dropped
    h.push(2, 1);
    expect(h.got).toEqual([2, 3, 4, 5]);
    h.seq.close();
  });

  it('skips a gap history no longer has, and says so', async () => {
    const h = harness();
    store(h, E, [5]);
    h.seq.prime(C, 1, E);
    h.push(5, 4);
    await vi.advanceTimersByTimeAsync(150);
    expect(h.got).toEqual([5]);
    expect(h.faults).toHaveLength(1);
    expect(h.faults[0]).toMatch(/room:1: gap skipped, offsets 2–4 are not in history/);
    h.seq.close();
  });

  it('retries a fill that fails, then gives up on the gap', async () => {
    const h = harness({ failFills: 10 });
    h.seq.prime(C, 0, E);
    h.push(2, 1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.fills).toHaveLength(3);
    expect(h.got).toEqual([2]);
    expect(h.faults).toEqual([expect.stringMatching(/history unreadable \(store unreachable\)/)]);
    h.seq.close();
  });

  it('drops duplicates and offsets older than what was delivered', () => {
    const h = harness();
    h.seq.prime(C, 3, E);
    h.push(2, 1);
    h.push(3, 2);
    h.push(4, 3);
    h.push(4, 3);
    h.push(6, 5);
    h.push(6, 5);
    h.push(5, 4);
    h.push(5, 4);
    expect(h.got).toEqual([4, 5, 6]);
    expect(h.seq.stats.dropped).toBe(5);
    h.seq.close();
  });

  it('starts over on a new epoch, and drops late publications of the old one', () => {
    const h = harness();
    h.seq.prime(C, 0, E);
    h.push(1, 0);
    h.push(2, 1);
    h.push(4, 3);
    // history was lost: numbering restarts under a new epoch (stored later); what was held is delivered first
    const later = (o: number): { epoch: string; at: number; prevAt: number } => ({ epoch: 'ep2', at: HORIZON + 1000 + o, prevAt: HORIZON + 1000 + o - 1 });
    h.push(1, 0, later(1));
    h.push(2, 1, later(2));
    expect(h.got).toEqual([1, 2, 4, 1, 2]);
    h.push(3, 2);
    h.push(3, 2, later(3));
    expect(h.got).toEqual([1, 2, 4, 1, 2, 3]);
    // an epoch never seen, but stored before what was delivered: older, dropped
    h.push(9, 8, { epoch: 'ep0', at: HORIZON });
    expect(h.got).toEqual([1, 2, 4, 1, 2, 3]);
    h.seq.close();
  });

  it('bounds what a channel holds: past maxHeld the gap is filled at once', async () => {
    const h = harness({ maxHeld: 5, gapMs: 10_000 });
    store(h, E, [1, 2, 3, 4, 5, 6, 7, 8]);
    h.seq.prime(C, 0, E);
    for (let o = 2; o <= 6; o++) h.push(o, o - 1);
    expect(h.got).toEqual([]);
    expect(h.fills).toEqual([]);
    h.push(7, 6);
    expect(h.fills).toEqual([[C, 1, 1]]);
    // more arrive while the fill is under way: past the bound again, everything held is released
    h.push(9, 8);
    expect(h.got).toEqual([2, 3, 4, 5, 6, 7, 9]);
    expect(h.faults).toEqual([expect.stringMatching(/more than 5 publications held/)]);
    await vi.advanceTimersByTimeAsync(0);
    // the fill's answer comes too late to matter
    expect(h.got).toEqual([2, 3, 4, 5, 6, 7, 9]);
    h.seq.close();
  });

  it('a first sight waits for a predecessor stored after the horizon', async () => {
    const h = harness();
    // a broadcast channel never seen: 2 arrives before 1, both stored after the horizon
    h.push(2, 1);
    h.push(3, 2);
    expect(h.got).toEqual([]);
    h.push(1, 0);
    expect(h.got).toEqual([1, 2, 3]);
    await vi.advanceTimersByTimeAsync(500);
    expect(h.fills).toEqual([]);
    h.seq.close();
  });

  it('a first sight starts at once when its predecessor was stored before the horizon, or long before it', () => {
    const h = harness({ idleMs: 60_000 });
    h.push(7, 6, { prevAt: HORIZON - 1 });
    expect(h.got).toEqual([7]);
    h.push(5, 4, { prevAt: HORIZON - 5 });
    expect(h.got).toEqual([7]);
    // stored 40 s after its predecessor: this node had delivered that one and forgotten the channel
    h.push(12, 11, { channel: 'room:2', prevAt: HORIZON + 10, at: HORIZON + 40_010 });
    expect(h.got).toEqual([7, 12]);
    h.seq.close();
  });

  it('a first sight whose predecessor never comes fills from that predecessor on', async () => {
    const h = harness();
    store(h, E, [3, 4, 5]);
    h.push(5, 4);
    await vi.advanceTimersByTimeAsync(100);
    expect(h.fills).toEqual([[C, 4, 4]]);
    expect(h.got).toEqual([4, 5]);
    h.seq.close();
  });

  it('forget drops what is held but keeps the position; idle channels are forgotten', async () => {
    const h = harness({ idleMs: 1000 });
    h.seq.prime(C, 0, E);
    h.push(1, 0);
    h.push(3, 2);
    h.seq.forget(C);
    await vi.advanceTimersByTimeAsync(200);
    expect(h.fills).toEqual([]);
    // still knows where it was: a publication whose predecessor is 3 goes through
    h.push(4, 3);
    expect(h.got).toEqual([1, 4]);
    expect(h.seq.stats.channels).toBe(1);
    await vi.advanceTimersByTimeAsync(2000);
    expect(h.seq.stats.channels).toBe(0);
    h.seq.close();
  });

  it('priming drops what history already holds', () => {
    const h = harness();
    h.seq.prime(C, 10, E);
    h.push(9, 8);
    h.push(10, 9);
    h.push(11, 10);
    expect(h.got).toEqual([11]);
    h.seq.close();
  });

  it('delivers nothing after close, even when a fill answers late', async () => {
    const h = harness();
    store(h, E, [1, 2]);
    h.seq.prime(C, 0, E);
    h.push(2, 1);
    await vi.advanceTimersByTimeAsync(100);
    h.seq.close();
    await vi.advanceTimersByTimeAsync(100);
    h.push(3, 2);
    expect(h.got).toEqual([1, 2]);
  });

  it('a throwing handler is reported and does not stop the channel', () => {
    const faults: string[] = [];
    const got: number[] = [];
    const seq = new Sequencer({
      deliver: (pub) => {
        if (pub.offset === 2) throw new Error('boom');
        got.push(pub.offset!);
      },
      fill: () => Promise.reject(new Error('unused')),
      onFault: (err, where) => void faults.push(`${where}: ${err.message}`),
    });
    seq.prime(C, 0, E);
    for (let o = 1; o <= 3; o++) seq.push({ channel: C, data: o, offset: o, epoch: E, ts: 0 }, { prev: o - 1, prevAt: 1, at: 2 });
    expect(got).toEqual([1, 3]);
    expect(faults).toEqual(['publication handler: boom']);
    seq.close();
  });
});
