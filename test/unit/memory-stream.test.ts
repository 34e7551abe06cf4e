import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BrokerHandlers } from '../../src/brokers/broker.js';
import type { HistoryPolicy } from '../../src/brokers/history.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { MemoryStream } from '../../src/brokers/memory/stream.js';

const T0 = 1_000_000;
const policy = (size: number, ttlMs = 60_000): HistoryPolicy => ({ size, ttlMs });

function fill(s: MemoryStream, n: number, p: HistoryPolicy, now = T0, channel = 'c'): void {
  for (let i = 0; i < n; i++) s.append({ channel, data: `m${s.top + 1}` }, p, now);
}
const offsets = (msgs: Array<{ offset?: number }>): Array<number | undefined> => msgs.map((m) => m.offset);

describe('MemoryStream', () => {
  it('starts empty at offset 0 with earliest 1', () => {
    const s = new MemoryStream(T0);
    expect(s.top).toBe(0);
    const page = s.read({ limit: 10 }, T0);
    expect(page).toEqual({ offset: 0, epoch: s.epoch, earliest: 1, messages: [] });
  });

  it('numbers messages 1, 2, 3… and stamps them with the epoch', () => {
    const s = new MemoryStream(T0);
    const p = policy(10);
    const a = s.append({ channel: 'c', data: 'a', from: 'u1' }, p, T0);
    const b = s.append({ channel: 'c', data: 'b' }, p, T0);
    const c = s.append({ channel: 'c', data: null }, p, T0);
    expect(a).toEqual({ channel: 'c', data: 'a', from: 'u1', offset: 1, epoch: s.epoch });
    expect(b).toEqual({ channel: 'c', data: 'b', offset: 2, epoch: s.epoch });
    expect(c).toEqual({ channel: 'c', data: null, offset: 3, epoch: s.epoch });
    expect(s.top).toBe(3);
    const page = s.read({ limit: 100 }, T0);
    expect(page.offset).toBe(3);
    expect(page.earliest).toBe(1);
    expect(page.messages.map((m) => m.data)).toEqual(['a', 'b', null]);
    expect(offsets(page.messages)).toEqual([1, 2, 3]);
  });

  it('keeps only the last `size` messages; earliest follows', () => {
    const s = new MemoryStream(T0);
    fill(s, 7, policy(3));
    const page = s.read({ limit: 100 }, T0);
    expect(page.offset).toBe(7);
    expect(page.earliest).toBe(5);
    expect(offsets(page.messages)).toEqual([5, 6, 7]);
    expect(page.messages.map((m) => m.data)).toEqual(['m5', 'm6', 'm7']);
    // wrap around the ring several times
    fill(s, 11, policy(3));
    const later = s.read({ limit: 100 }, T0);
    expect(later.offset).toBe(18);
    expect(later.earliest).toBe(16);
    expect(later.messages.map((m) => m.data)).toEqual(['m16', 'm17', 'm18']);
  });

  it('a ring of size 1 keeps just the newest', () => {
    const s = new MemoryStream(T0);
    fill(s, 4, policy(1));
    const page = s.read({ limit: 10 }, T0);
    expect(page.earliest).toBe(4);
    expect(offsets(page.messages)).toEqual([4]);
  });

  it('reads with since return exactly the offsets after since, oldest first, bounded by limit', () => {
    const s = new MemoryStream(T0);
    fill(s, 10, policy(100));
    expect(offsets(s.read({ since: 0, limit: 100 }, T0).messages)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(offsets(s.read({ since: 6, limit: 100 }, T0).messages)).toEqual([7, 8, 9, 10]);
    expect(offsets(s.read({ since: 6, limit: 2 }, T0).messages)).toEqual([7, 8]);
    expect(offsets(s.read({ since: 9, limit: 5 }, T0).messages)).toEqual([10]);
    expect(offsets(s.read({ since: 10, limit: 5 }, T0).messages)).toEqual([]);
    expect(offsets(s.read({ since: 50, limit: 5 }, T0).messages)).toEqual([]);
  });

  it('reads with since after wrap-around map offsets to the right entries', () => {
    const s = new MemoryStream(T0);
    fill(s, 13, policy(5)); // holds 9..13, head in the middle of the ring
    const page = s.read({ since: 10, limit: 100 }, T0);
    expect(page.earliest).toBe(9);
    expect(offsets(page.messages)).toEqual([11, 12, 13]);
    expect(page.messages.map((m) => m.data)).toEqual(['m11', 'm12', 'm13']);
    // since older than what is kept: starts at earliest (the caller sees the gap through `earliest`)
    expect(offsets(s.read({ since: 2, limit: 100 }, T0).messages)).toEqual([9, 10, 11, 12, 13]);
    expect(offsets(s.read({ since: 2, limit: 2 }, T0).messages)).toEqual([9, 10]);
  });

  it('reads without since return the newest `limit`, oldest first', () => {
    const s = new MemoryStream(T0);
    fill(s, 10, policy(100));
    expect(offsets(s.read({ limit: 3 }, T0).messages)).toEqual([8, 9, 10]);
    expect(offsets(s.read({ limit: 1 }, T0).messages)).toEqual([10]);
  });

  it('limit 0 returns just the position', () => {
    const s = new MemoryStream(T0);
    fill(s, 5, policy(3));
    expect(s.read({ limit: 0 }, T0)).toEqual({ offset: 5, epoch: s.epoch, earliest: 3, messages: [] });
    expect(s.read({ since: 1, limit: 0 }, T0)).toEqual({ offset: 5, epoch: s.epoch, earliest: 3, messages: [] });
  });

  it('expires entries after the TTL (entries expire at append time + ttl)', () => {
    const s = new MemoryStream(T0);
    const p = policy(10, 1000);
    s.append({ channel: 'c', data: 1 }, p, T0); // expires T0+1000
    s.append({ channel: 'c', data: 2 }, p, T0 + 500); // expires T0+1500
    s.append({ channel: 'c', data: 3 }, p, T0 + 900); // expires T0+1900
    expect(offsets(s.read({ limit: 10 }, T0 + 999).messages)).toEqual([1, 2, 3]);
    const a = s.read({ limit: 10 }, T0 + 1000);
    expect(offsets(a.messages)).toEqual([2, 3]);
    expect(a.earliest).toBe(2);
    const b = s.read({ since: 0, limit: 10 }, T0 + 1600);
    expect(offsets(b.messages)).toEqual([3]);
    expect(b.earliest).toBe(3);
    expect(b.offset).toBe(3);
  });

  it('when everything expired, earliest is top + 1 while top and epoch stay', () => {
    const s = new MemoryStream(T0);
    const epoch = s.epoch;
    fill(s, 4, policy(10, 1000));
    const page = s.read({ since: 0, limit: 10 }, T0 + 5000);
    expect(page).toEqual({ offset: 4, epoch, earliest: 5, messages: [] });
    expect(s.top).toBe(4);
    expect(s.epoch).toBe(epoch);
    // numbering continues after expiry
    const next = s.append({ channel: 'c', data: 'n' }, policy(10, 1000), T0 + 6000);
    expect(next.offset).toBe(5);
    expect(next.epoch).toBe(epoch);
    const after = s.read({ since: 4, limit: 10 }, T0 + 6000);
    expect(after.earliest).toBe(5);
    expect(offsets(after.messages)).toEqual([5]);
  });

  it('after full expiry of a wrapped ring, new appends read back correctly', () => {
    const s = new MemoryStream(T0);
    const p = policy(3, 1000);
    fill(s, 5, p, T0);
    expect(s.read({ limit: 10 }, T0 + 2000).messages).toEqual([]);
    fill(s, 4, p, T0 + 2000);
    const page = s.read({ limit: 10 }, T0 + 2000);
    expect(page.earliest).toBe(7);
    expect(page.messages.map((m) => m.data)).toEqual(['m7', 'm8', 'm9']);
  });

  it('shrinking the size keeps the newest entries', () => {
    const s = new MemoryStream(T0);
    fill(s, 8, policy(10));
    s.append({ channel: 'c', data: 'm9' }, policy(4), T0);
    const page = s.read({ limit: 100 }, T0);
    expect(page.offset).toBe(9);
    expect(page.earliest).toBe(6);
    expect(page.messages.map((m) => m.data)).toEqual(['m6', 'm7', 'm8', 'm9']);
  });

  it('shrinking the size of a wrapped ring keeps the newest entries', () => {
    const s = new MemoryStream(T0);
    fill(s, 12, policy(5)); // 8..12, wrapped
    s.append({ channel: 'c', data: 'm13' }, policy(3), T0);
    const page = s.read({ limit: 100 }, T0);
    expect(page.earliest).toBe(11);
    expect(page.messages.map((m) => m.data)).toEqual(['m11', 'm12', 'm13']);
  });

  it('growing the size keeps everything and then holds more', () => {
    const s = new MemoryStream(T0);
    fill(s, 7, policy(3)); // 5..7
    fill(s, 4, policy(6)); // 5..11, then ring of 6 keeps 6..11
    const page = s.read({ limit: 100 }, T0);
    expect(page.offset).toBe(11);
    expect(page.earliest).toBe(6);
    expect(page.messages.map((m) => m.data)).toEqual(['m6', 'm7', 'm8', 'm9', 'm10', 'm11']);
  });

  it('idle(): only when empty and untouched for longer than idleMs', () => {
    const s = new MemoryStream(T0);
    expect(s.idle(T0 + 100, 100)).toBe(false);
    expect(s.idle(T0 + 101, 100)).toBe(true);
    s.append({ channel: 'c', data: 1 }, policy(5, 1000), T0 + 200);
    expect(s.touchedAt).toBe(T0 + 200);
    // holds a message: not idle, however long
    expect(s.idle(T0 + 999, 10)).toBe(false);
    // the message expires at T0+1200; idle only after it expired
    expect(s.idle(T0 + 1199, 100)).toBe(false);
    expect(s.idle(T0 + 1200, 100)).toBe(true);
    // a read touches the stream
    s.read({ limit: 1 }, T0 + 5000);
    expect(s.touchedAt).toBe(T0 + 5000);
    expect(s.idle(T0 + 5100, 100)).toBe(false);
    expect(s.idle(T0 + 5101, 100)).toBe(true);
  });
});

describe('MemoryBroker.close on a shared bus', () => {
  afterEach(() => vi.useRealTimers());

  it('is idempotent: closing one broker twice keeps the bus sweeping for the others', async () => {
    vi.useFakeTimers();
    let now = 0;
    const bus = new MemoryBus(() => now);
    const a = new MemoryBroker(bus);
    const b = new MemoryBroker(bus);
    const handlers: BrokerHandlers = { onPublication: () => undefined, onReadyChange: () => undefined, onControl: () => undefined };
    await a.start('a', handlers);
    await b.start('b', handlers);
    const policy: HistoryPolicy = { size: 10, ttlMs: 1000 };
    // (a read keeps nothing: a publish makes the stream the sweep is to forget)
    const before = (await b.publish({ channel: 'quiet', data: 1, ts: now }, policy)).epoch;
    await a.close();
    await a.close();
    now += 25 * 3600 * 1000;
    vi.advanceTimersByTime(60_000);
    expect((await b.store.history('quiet', { limit: 0 }, policy)).epoch).not.toBe(before);
    await b.close();
  });
});
