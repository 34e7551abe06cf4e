import { describe, expect, it } from 'vitest';
import { backoffCeiling, backoffDelay } from '../../src/shared/backoff.js';

describe('client backoff', () => {
  it('doubles the window from min and caps it at max', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((a) => backoffCeiling(a, 500, 20_000))).toEqual([
      500, 1000, 2000, 4000, 8000, 16_000, 20_000,
    ]);
    expect(backoffCeiling(10_000, 500, 20_000)).toBe(20_000);
    expect(backoffCeiling(-3, 500, 20_000)).toBe(500);
  });

  it('is full jitter: random 0 gives 0, random just below 1 gives just below the ceiling', () => {
    expect(backoffDelay(3, 500, 20_000, () => 0)).toBe(0);
    expect(backoffDelay(3, 500, 20_000, () => 0.5)).toBe(2000);
    expect(backoffDelay(3, 500, 20_000, () => 0.999999)).toBe(3999);
    // A source that returns exactly 1 still stays inside the window.
    expect(backoffDelay(3, 500, 20_000, () => 1)).toBe(3999);
    expect(backoffDelay(50, 500, 20_000, () => 1)).toBe(19_999);
  });

  it('stays within [0, min(max, min * 2^attempt)) for any random value', () => {
    let seed = 42;
    const lcg = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let attempt = 0; attempt < 40; attempt++) {
      const ceiling = backoffCeiling(attempt, 100, 5000);
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(attempt, 100, 5000, lcg);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(ceiling);
        expect(Number.isInteger(d)).toBe(true);
      }
    }
  });

  it('spreads delays over the whole window (jitter, not a fixed step)', () => {
    const samples = Array.from({ length: 2000 }, () => backoffDelay(4, 500, 20_000));
    const ceiling = backoffCeiling(4, 500, 20_000);
    expect(Math.min(...samples)).toBeLessThan(ceiling * 0.05);
    expect(Math.max(...samples)).toBeGreaterThan(ceiling * 0.95);
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    expect(mean).toBeGreaterThan(ceiling * 0.4);
    expect(mean).toBeLessThan(ceiling * 0.6);
  });

  it('uses the same formula for min = max (constant window)', () => {
    expect(backoffCeiling(7, 1000, 1000)).toBe(1000);
  });
});
