import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BrokerHandlers, BrokerPublication, HistoryPolicy } from '../../src/brokers/broker.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { MemoryStream, newEpoch } from '../../src/brokers/memory/stream.js';

const T0 = 1_000_000;
const policy = (size: number, ttlMs = 60_000): HistoryPolicy => ({ size, ttlMs });

function fill(s: MemoryStream, n: number, p: HistoryPolicy, now = T0, channel = 'c'): void {
  for (let i = 0; i < n; i++) s.append({ channel, data: `m${s.top + 1}` }, p, now);
}
const offsets = (msgs: Array<{ offset?: number }>): Array<number | undefined> => msgs.map((m) => m.offset);

describe('newEpoch', () => {
  it('is an 8-character string that differs between calls', () => {
    const a = newEpoch();
    expect(a).toMatch(/^[a-z0-9]{8}$/);
    const seen = new Set(Array.from({ length: 50 }, () => newEpoch()));
    expect(seen.size).toBeGreaterThan(45);
  });
});

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

interface Recorder extends BrokerHandlers {
  pubs: BrokerPublication[];
}
const recorder = (): Recorder => {
  const pubs: BrokerPublication[] = [];
  return { pubs, onPublication: (p) => pubs.push(p), onReadyChange: () => undefined };
};

describe('MemoryBus', () => {
  it('publish without history returns {} and delivers without offset or epoch', () => {
    const bus = new MemoryBus(() => T0);
    const b = new MemoryBroker(bus);
    const r = recorder();
    void b.start(r);
    bus.subscribe('c', b);
    expect(bus.publish({ channel: 'c', data: 'x', ts: 5, from: 'u' }, null)).toEqual({});
    expect(bus.publish({ channel: 'c', data: 'y', ts: 6 }, policy(0))).toEqual({});
    expect(r.pubs).toEqual([
      { channel: 'c', data: 'x', ts: 5, from: 'u' },
      { channel: 'c', data: 'y', ts: 6 },
    ]);
    // nothing stored
    expect(bus.history('c', { limit: 10 })).toMatchObject({ offset: 0, earliest: 1, messages: [] });
  });

  it('publish with history returns and delivers offset and epoch; history holds the message without ts', () => {
    const bus = new MemoryBus(() => T0);
    const b = new MemoryBroker(bus);
    const r = recorder();
    void b.start(r);
    bus.subscribe('c', b);
    const r1 = bus.publish({ channel: 'c', data: 1, ts: 10, from: 'alice' }, policy(10));
    const r2 = bus.publish({ channel: 'c', data: 2, ts: 11 }, policy(10));
    expect(r1.offset).toBe(1);
    expect(r2.offset).toBe(2);
    expect(typeof r1.epoch).toBe('string');
    expect(r2.epoch).toBe(r1.epoch);
    expect(r.pubs).toEqual([
      { channel: 'c', data: 1, ts: 10, from: 'alice', offset: 1, epoch: r1.epoch },
      { channel: 'c', data: 2, ts: 11, offset: 2, epoch: r1.epoch },
    ]);
    const page = bus.history('c', { since: 0, limit: 10 });
    expect(page).toEqual({
      offset: 2,
      epoch: r1.epoch,
      earliest: 1,
      messages: [
        { channel: 'c', data: 1, from: 'alice', offset: 1, epoch: r1.epoch },
        { channel: 'c', data: 2, offset: 2, epoch: r1.epoch },
      ],
    });
  });

  it('channels have independent numbering and epochs', () => {
    const bus = new MemoryBus(() => T0);
    expect(bus.publish({ channel: 'a', data: 1, ts: 0 }, policy(5)).offset).toBe(1);
    expect(bus.publish({ channel: 'a', data: 2, ts: 0 }, policy(5)).offset).toBe(2);
    expect(bus.publish({ channel: 'b', data: 1, ts: 0 }, policy(5)).offset).toBe(1);
    expect(bus.history('a', { limit: 5 }).messages.map((m) => m.data)).toEqual([1, 2]);
    expect(bus.history('b', { limit: 5 }).messages.map((m) => m.data)).toEqual([1]);
  });

  it('uses its clock for TTL', () => {
    let now = T0;
    const bus = new MemoryBus(() => now);
    bus.publish({ channel: 'c', data: 1, ts: 0 }, policy(5, 1000));
    now = T0 + 600;
    bus.publish({ channel: 'c', data: 2, ts: 0 }, policy(5, 1000));
    now = T0 + 1000;
    expect(bus.history('c', { limit: 5 }).messages.map((m) => m.data)).toEqual([2]);
    now = T0 + 1600;
    expect(bus.history('c', { limit: 5 })).toMatchObject({ offset: 2, earliest: 3, messages: [] });
  });

  it('only brokers subscribed to a channel receive it', () => {
    const bus = new MemoryBus(() => T0);
    const a = new MemoryBroker(bus);
    const b = new MemoryBroker(bus);
    const ra = recorder();
    const rb = recorder();
    void a.start(ra);
    void b.start(rb);
    bus.subscribe('x', a);
    bus.subscribe('y', b);
    bus.publish({ channel: 'x', data: 'to-x', ts: 0 }, null);
    bus.publish({ channel: 'y', data: 'to-y', ts: 0 }, null);
    bus.publish({ channel: 'z', data: 'to-z', ts: 0 }, null);
    expect(ra.pubs.map((p) => p.data)).toEqual(['to-x']);
    expect(rb.pubs.map((p) => p.data)).toEqual(['to-y']);
  });

  it('unsubscribing one broker leaves others subscribed', () => {
    const bus = new MemoryBus(() => T0);
    const a = new MemoryBroker(bus);
    const b = new MemoryBroker(bus);
    const ra = recorder();
    const rb = recorder();
    void a.start(ra);
    void b.start(rb);
    bus.subscribe('x', a);
    bus.subscribe('x', b);
    bus.unsubscribe('x', a);
    bus.unsubscribe('x', a); // twice is harmless
    bus.publish({ channel: 'x', data: 1, ts: 0 }, null);
    expect(ra.pubs).toEqual([]);
    expect(rb.pubs.map((p) => p.data)).toEqual([1]);
  });

  it('presence add / remove / list, per channel, keyed by session', () => {
    const bus = new MemoryBus(() => T0);
    expect(bus.presence('room')).toEqual([]);
    bus.presenceAdd('room', { user: 'alice', session: 's1', node: 'n1' });
    bus.presenceAdd('room', { user: 'bob', session: 's2', node: 'n2' });
    bus.presenceAdd('other', { user: 'carol', session: 's3', node: 'n1' });
    // same session again replaces, not duplicates
    bus.presenceAdd('room', { user: 'alice', session: 's1', node: 'n9' });
    expect(bus.presence('room')).toEqual([
      { user: 'alice', session: 's1', node: 'n9' },
      { user: 'bob', session: 's2', node: 'n2' },
    ]);
    bus.presenceRemove('room', 's1');
    bus.presenceRemove('room', 'nope');
    bus.presenceRemove('nowhere', 's1');
    expect(bus.presence('room')).toEqual([{ user: 'bob', session: 's2', node: 'n2' }]);
    bus.presenceRemove('room', 's2');
    expect(bus.presence('room')).toEqual([]);
    expect(bus.presence('other')).toEqual([{ user: 'carol', session: 's3', node: 'n1' }]);
  });
});

describe('MemoryBroker', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('reports kind and readiness', () => {
    const b = new MemoryBroker();
    expect(b.kind).toBe('memory');
    expect(b.ready).toBe(true);
  });

  it('two brokers on one bus both receive a publication, in order, with the same offset', async () => {
    const bus = new MemoryBus();
    const a = new MemoryBroker(bus);
    const b = new MemoryBroker(bus);
    const ra = recorder();
    const rb = recorder();
    await a.start(ra);
    await b.start(rb);
    await a.subscribe('chat:1');
    await b.subscribe('chat:1');
    const p1 = await b.publish({ channel: 'chat:1', data: 'hello', ts: 1, from: 'u' }, policy(10));
    const p2 = await a.publish({ channel: 'chat:1', data: 'again', ts: 2 }, policy(10));
    expect(p1.offset).toBe(1);
    expect(p2.offset).toBe(2);
    for (const r of [ra, rb]) {
      expect(r.pubs.map((p) => [p.data, p.offset, p.epoch])).toEqual([
        ['hello', 1, p1.epoch],
        ['again', 2, p1.epoch],
      ]);
    }
    // history is shared: read it through either broker
    const page = await a.history('chat:1', { since: 1, limit: 10 }, policy(10));
    expect(page.messages.map((m) => m.data)).toEqual(['again']);
    expect((await b.history('chat:1', { limit: 10 }, policy(10))).offset).toBe(2);
    await a.close();
    await b.close();
  });

  it('separate buses are separate clusters', async () => {
    const a = new MemoryBroker();
    const b = new MemoryBroker();
    const ra = recorder();
    const rb = recorder();
    await a.start(ra);
    await b.start(rb);
    await a.subscribe('x');
    await b.subscribe('x');
    await a.publish({ channel: 'x', data: 1, ts: 0 }, policy(5));
    expect(ra.pubs).toHaveLength(1);
    expect(rb.pubs).toHaveLength(0);
    expect((await b.history('x', { limit: 5 }, policy(5))).offset).toBe(0);
    await a.close();
    await b.close();
  });

  it('unsubscribe stops delivery', async () => {
    const bus = new MemoryBus();
    const a = new MemoryBroker(bus);
    const r = recorder();
    await a.start(r);
    await a.subscribe('x');
    await a.publish({ channel: 'x', data: 1, ts: 0 }, null);
    await a.unsubscribe('x');
    await a.publish({ channel: 'x', data: 2, ts: 0 }, null);
    expect(r.pubs.map((p) => p.data)).toEqual([1]);
    await a.close();
  });

  it('presence through the broker is shared by the bus', async () => {
    const bus = new MemoryBus();
    const a = new MemoryBroker(bus);
    const b = new MemoryBroker(bus);
    await a.start(recorder());
    await b.start(recorder());
    await a.presenceAdd('room', { user: 'alice', session: 's1', node: 'a' });
    await b.presenceAdd('room', { user: 'bob', session: 's2', node: 'b' });
    expect(await b.presence('room')).toEqual([
      { user: 'alice', session: 's1', node: 'a' },
      { user: 'bob', session: 's2', node: 'b' },
    ]);
    await a.presenceRemove('room', 's2');
    expect(await a.presence('room')).toEqual([{ user: 'alice', session: 's1', node: 'a' }]);
    await a.close();
    await b.close();
  });

  it('close() unsubscribes everything and stops delivery; other brokers keep receiving', async () => {
    const bus = new MemoryBus();
    const a = new MemoryBroker(bus);
    const b = new MemoryBroker(bus);
    const ra = recorder();
    const rb = recorder();
    await a.start(ra);
    await b.start(rb);
    await a.subscribe('x');
    await a.subscribe('y');
    await b.subscribe('x');
    await a.close();
    bus.publish({ channel: 'x', data: 1, ts: 0 }, null);
    bus.publish({ channel: 'y', data: 2, ts: 0 }, null);
    expect(ra.pubs).toEqual([]);
    expect(rb.pubs.map((p) => p.data)).toEqual([1]);
    // even a direct deliver after close reaches no handler
    a.deliver({ channel: 'x', data: 3, ts: 0 });
    expect(ra.pubs).toEqual([]);
    await b.close();
  });

  it('the bus forgets a stream that stayed empty and idle for 24 h (new epoch, numbering restarts)', async () => {
    vi.useFakeTimers();
    let now = T0;
    const bus = new MemoryBus(() => now);
    const a = new MemoryBroker(bus);
    await a.start(recorder());
    const first = await a.publish({ channel: 'x', data: 1, ts: 0 }, policy(5, 1000));
    const kept = await a.publish({ channel: 'k', data: 1, ts: 0 }, policy(5, 48 * 3600 * 1000));
    now = T0 + 25 * 3600 * 1000;
    vi.advanceTimersByTime(60_000);
    const page = await a.history('x', { limit: 5 }, policy(5, 1000));
    expect(page.offset).toBe(0);
    expect(page.epoch).not.toBe(first.epoch);
    // a stream still holding messages is kept
    const kpage = await a.history('k', { limit: 5 }, policy(5));
    expect(kpage.epoch).toBe(kept.epoch);
    expect(kpage.offset).toBe(1);
    await a.close();
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
    const handlers: BrokerHandlers = { onPublication: () => undefined, onReadyChange: () => undefined };
    await a.start(handlers);
    await b.start(handlers);
    const policy: HistoryPolicy = { size: 10, ttlMs: 1000 };
    const before = (await b.history('quiet', { limit: 0 }, policy)).epoch;
    await a.close();
    await a.close();
    now += 25 * 3600 * 1000;
    vi.advanceTimersByTime(60_000);
    expect((await b.history('quiet', { limit: 0 }, policy)).epoch).not.toBe(before);
    await b.close();
  });
});
