import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BrokerPublication } from '../../src/brokers/broker.js';
import { ChannelOrder } from '../../src/brokers/channel-order.js';

const pub = (offset: number | undefined, epoch = 'e1', channel = 'chat:a'): BrokerPublication =>
  offset === undefined ? { channel, data: 'x', ts: 0 } : { channel, data: offset, ts: 0, offset, epoch };

describe('NATS reorder window', () => {
  afterEach(() => vi.useRealTimers());

  function setup(holdMs = 100) {
    const out: Array<[string, number | undefined, string | undefined]> = [];
    // Configured as the NATS broker configures it.
    const r = new ChannelOrder({ deliver: (p) => void out.push([p.channel, p.offset, p.epoch]), predecessor: (p) => p.offset! - 1, holdMs });
    return { r, out, offsets: (channel = 'chat:a') => out.filter((o) => o[0] === channel).map((o) => o[1]) };
  }

  it('passes messages in order at once, and those without offsets untouched', () => {
    const { r, offsets } = setup();
    for (const o of [1, 2, 3]) r.push(pub(o));
    r.push(pub(undefined));
    expect(offsets()).toEqual([1, 2, 3, undefined]);
  });

  it('holds one that skips ahead until its predecessor arrives, per channel', () => {
    const { r, offsets } = setup();
    r.push(pub(1));
    r.push(pub(3));
    r.push(pub(4));
    r.push(pub(7, 'e1', 'chat:b'));
    expect(offsets()).toEqual([1]);
    r.push(pub(2));
    expect(offsets()).toEqual([1, 2, 3, 4]);
    expect(offsets('chat:b')).toEqual([7]);
  });

  it('drops repeats, and after the wait passes on what it held, in order, over the gap', () => {
    vi.useFakeTimers();
    const { r, offsets } = setup(100);
    r.push(pub(1));
    r.push(pub(1));
    r.push(pub(5));
    r.push(pub(3));
    vi.advanceTimersByTime(99);
    expect(offsets()).toEqual([1]);
    vi.advanceTimersByTime(1);
    expect(offsets()).toEqual([1, 3, 5]);
    r.push(pub(4));
    r.push(pub(6));
    expect(offsets()).toEqual([1, 3, 5, 6]);
  });

  it('starts over in a new epoch, and forgets an unsubscribed channel with what it held', () => {
    vi.useFakeTimers();
    const { r, out, offsets } = setup(100);
    r.push(pub(8));
    r.push(pub(10));
    r.push(pub(1, 'e2'));
    expect(out.map((o) => `${o[1]}/${o[2]}`)).toEqual(['8/e1', '1/e2']);
    r.push(pub(3, 'e2'));
    r.forget('chat:a');
    vi.advanceTimersByTime(500);
    expect(offsets()).toEqual([8, 1]);
    r.push(pub(7, 'e2'));
    expect(offsets()).toEqual([8, 1, 7]);
  });
});
