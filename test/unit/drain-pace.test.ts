/**
 * The pace of a drain: clients are told to go evenly over the spread (the
 * first at once, each once, in order), the spread grows with the number of
 * clients up to half the drain timeout, and the listener lingers a few
 * seconds but never past half the drain timeout; `close()` (no grace) does
 * everything at once.
 */
import { describe, expect, it } from 'vitest';
import { closeSpread, DRAIN_CLOSES_PER_SECOND, drainPlan, READINESS_LINGER_MS } from '../../src/server/drain-pace.js';

describe('drainPlan', () => {
  it('spreads closes at DRAIN_CLOSES_PER_SECOND, within half the drain timeout', () => {
    expect(drainPlan(0, 30_000).spreadMs).toBe(0);
    expect(drainPlan(DRAIN_CLOSES_PER_SECOND, 30_000).spreadMs).toBe(1000);
    expect(drainPlan(100 * DRAIN_CLOSES_PER_SECOND, 30_000).spreadMs).toBe(15_000);
  });

  it('lingers READINESS_LINGER_MS, within half the drain timeout', () => {
    expect(drainPlan(0, 30_000).lingerMs).toBe(READINESS_LINGER_MS);
    expect(drainPlan(0, 2000).lingerMs).toBe(1000);
  });

  it('with no grace (close), neither spreads nor lingers', () => {
    expect(drainPlan(5000, 0)).toEqual({ spreadMs: 0, lingerMs: 0 });
  });
});

describe('closeSpread', () => {
  it('closes each item once, in order, the first at once and the rest over the spread', async () => {
    const items = Array.from({ length: 20 }, (_, i) => i);
    const start = Date.now();
    const closed: Array<{ item: number; at: number }> = [];
    await closeSpread(items, 300, (item) => closed.push({ item, at: Date.now() - start }));
    expect(closed.map((c) => c.item)).toEqual(items);
    expect(closed[0]?.at).toBeLessThan(100);
    // A loaded machine only stretches the spread.
    expect(closed[closed.length - 1]?.at).toBeGreaterThanOrEqual(200);
    // Evenly: by the middle of the spread, not all of them yet.
    expect(closed.filter((c) => c.at < 150).length).toBeLessThan(items.length);
  });

  it('closes everything at once with no spread, and returns at once with nothing to close', async () => {
    const closed: number[] = [];
    const start = Date.now();
    await closeSpread([1, 2, 3], 0, (item) => closed.push(item));
    await closeSpread([], 1000, (item: number) => closed.push(item));
    expect(closed).toEqual([1, 2, 3]);
    expect(Date.now() - start).toBeLessThan(100);
  });
});
