import { describe, expect, it } from 'vitest';
import { FULL, IpConnectionLimiter, takeToken, TokenBucket, WindowCounter } from '../../src/server/core/rate.js';

const T0 = 1_700_000_000_000;

const takes = (b: TokenBucket, n: number, now: number): boolean[] => Array.from({ length: n }, () => b.take(now));

describe('TokenBucket', () => {
  it('allows a burst, then refuses', () => {
    const b = new TokenBucket(10, 5, T0);
    expect(takes(b, 5, T0)).toEqual([true, true, true, true, true]);
    expect(b.take(T0)).toBe(false);
    expect(b.take(T0)).toBe(false);
  });

  it('refills at `rate` tokens per second', () => {
    const b = new TokenBucket(10, 5, T0);
    takes(b, 5, T0);
    expect(b.take(T0 + 50)).toBe(false); // half a token
    expect(b.take(T0 + 100)).toBe(true); // one token after 100 ms
    expect(b.take(T0 + 100)).toBe(false);
    expect(takes(b, 3, T0 + 400)).toEqual([true, true, true]);
    expect(b.take(T0 + 400)).toBe(false);
  });

  it('accumulates fractional refills across refused takes', () => {
    const b = new TokenBucket(1, 1, T0);
    expect(b.take(T0)).toBe(true);
    expect(b.take(T0 + 400)).toBe(false);
    expect(b.take(T0 + 800)).toBe(false);
    expect(b.take(T0 + 1000)).toBe(true);
    expect(b.take(T0 + 1000)).toBe(false);
  });

  it('never holds more than burst, however long it was idle', () => {
    const b = new TokenBucket(100, 3, T0);
    takes(b, 3, T0);
    expect(takes(b, 4, T0 + 3_600_000)).toEqual([true, true, true, false]);
  });

  it('does not refill when the clock goes backwards', () => {
    const b = new TokenBucket(10, 2, T0);
    takes(b, 2, T0);
    expect(b.take(T0 - 10_000)).toBe(false);
    expect(b.take(T0 + 100)).toBe(true);
  });

  it('a steady rate at the refill speed is sustained indefinitely', () => {
    const b = new TokenBucket(10, 1, T0);
    const results: boolean[] = [];
    for (let i = 0; i < 50; i++) results.push(b.take(T0 + i * 100));
    expect(results.every(Boolean)).toBe(true);
    expect(b.take(T0 + 49 * 100 + 50)).toBe(false);
  });
});

describe('takeToken (a bucket as one number)', () => {
  it('keeps its precision with intervals that are not whole milliseconds, at today\'s timestamps', () => {
    const now = Date.now();
    let fullAt = FULL;
    const take = (t: number): boolean => {
      const next = takeToken(fullAt, t, 7, 50);
      if (next !== undefined) fullAt = next;
      return next !== undefined;
    };
    // A whole burst at one instant, and not one more.
    expect(Array.from({ length: 51 }, () => take(now))).toEqual([...Array(50).fill(true), false]);
    // Then a steady 7 per second for an hour: each due token is there, and none more.
    const start = now + 50_000;
    let granted = 0;
    for (let i = 0; i < 7 * 3600; i++) if (take(start + (i * 1000) / 7)) granted++;
    expect(granted).toBe(7 * 3600);
    expect(Array.from({ length: 51 }, () => take(start + 3600 * 1000 - 1000 / 7 + 50_000)).filter(Boolean)).toHaveLength(50);
  });
});

describe('WindowCounter', () => {
  it('reports nothing up to the limit within a window, then true', () => {
    const w = new WindowCounter(3, 1000, T0);
    expect([w.hit(T0), w.hit(T0 + 10), w.hit(T0 + 500)]).toEqual([false, false, false]);
    expect(w.hit(T0 + 999)).toBe(true);
    expect(w.hit(T0 + 999)).toBe(true);
  });

  it('resets when the window has passed', () => {
    const w = new WindowCounter(2, 1000, T0);
    w.hit(T0);
    w.hit(T0);
    expect(w.hit(T0 + 1)).toBe(true);
    expect(w.hit(T0 + 1000)).toBe(false); // new window starts at T0+1000
    expect(w.hit(T0 + 1500)).toBe(false);
    expect(w.hit(T0 + 1999)).toBe(true);
    expect(w.hit(T0 + 2000)).toBe(false);
  });

  it('the window starts at the first hit after a reset, not on a fixed grid', () => {
    const w = new WindowCounter(1, 1000, T0);
    expect(w.hit(T0 + 5000)).toBe(false); // window now starts at T0+5000
    expect(w.hit(T0 + 5999)).toBe(true);
    expect(w.hit(T0 + 6000)).toBe(false);
  });

  it('limit 0 flags every hit', () => {
    const w = new WindowCounter(0, 1000, T0);
    expect(w.hit(T0)).toBe(true);
    expect(w.hit(T0 + 5000)).toBe(true);
  });
});

describe('IpConnectionLimiter', () => {
  it('allows perSecond connections per IP per second, then refuses', () => {
    const l = new IpConnectionLimiter(3);
    expect([l.allow('1.1.1.1', T0), l.allow('1.1.1.1', T0 + 100), l.allow('1.1.1.1', T0 + 200)]).toEqual([true, true, true]);
    expect(l.allow('1.1.1.1', T0 + 300)).toBe(false);
    expect(l.allow('1.1.1.1', T0 + 999)).toBe(false);
  });

  it('other IPs are unaffected', () => {
    const l = new IpConnectionLimiter(1);
    expect(l.allow('10.0.0.1', T0)).toBe(true);
    expect(l.allow('10.0.0.1', T0)).toBe(false);
    expect(l.allow('10.0.0.2', T0)).toBe(true);
    expect(l.allow('::1', T0)).toBe(true);
    expect(l.allow('10.0.0.2', T0)).toBe(false);
  });

  it('allows again in the next second', () => {
    const l = new IpConnectionLimiter(2);
    l.allow('ip', T0);
    l.allow('ip', T0);
    expect(l.allow('ip', T0 + 500)).toBe(false);
    expect(l.allow('ip', T0 + 1000)).toBe(true);
    expect(l.allow('ip', T0 + 1000)).toBe(true);
    expect(l.allow('ip', T0 + 1001)).toBe(false);
  });

  it('perSecond 0 (or less) disables the limit and keeps no table', () => {
    for (const perSecond of [0, -1]) {
      const l = new IpConnectionLimiter(perSecond);
      for (let i = 0; i < 1000; i++) expect(l.allow('ip', T0)).toBe(true);
      expect(l.size).toBe(0);
    }
  });

  it('the table never exceeds maxIps when many distinct IPs arrive at once', () => {
    const l = new IpConnectionLimiter(5, 100);
    for (let i = 0; i < 10_000; i++) {
      expect(l.allow(`ip-${i}`, T0)).toBe(true);
      expect(l.size).toBeLessThanOrEqual(100);
    }
    expect(l.size).toBeGreaterThan(0);
  });

  it('the table never exceeds maxIps when many distinct IPs arrive over time', () => {
    const l = new IpConnectionLimiter(5, 50);
    for (let i = 0; i < 5_000; i++) {
      l.allow(`ip-${i}`, T0 + i * 7);
      expect(l.size).toBeLessThanOrEqual(50);
    }
  });

  it('when full, stale windows are dropped first and fresh ones kept', () => {
    const l = new IpConnectionLimiter(1, 4);
    l.allow('old-1', T0);
    l.allow('old-2', T0);
    l.allow('fresh', T0 + 900);
    l.allow('fresh2', T0 + 900);
    expect(l.size).toBe(4);
    // at T0+1000 the two 'old' windows are stale; the fresh ones are not
    expect(l.allow('new', T0 + 1000)).toBe(true);
    expect(l.size).toBe(3);
    // 'fresh' is still limited: its window survived the prune
    expect(l.allow('fresh', T0 + 1000)).toBe(false);
  });

  it('a known IP in a new second reuses its entry and does not grow the table', () => {
    const l = new IpConnectionLimiter(1, 2);
    l.allow('a', T0);
    l.allow('b', T0);
    expect(l.allow('a', T0 + 1000)).toBe(true);
    expect(l.size).toBe(2);
  });

  it('defaults to a table of 100000', () => {
    const l = new IpConnectionLimiter(1);
    for (let i = 0; i < 100_000; i++) l.allow(`i${i}`, T0);
    expect(l.size).toBe(100_000);
    l.allow('one-more', T0);
    expect(l.size).toBeLessThanOrEqual(100_000);
  });
});
