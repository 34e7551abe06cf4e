/**
 * The benchmark's search for the highest sustained targeted rate
 * (bench/scale/search.ts): which rates count as sustained, and which rate
 * it tries next, so that a full run spends its few steps where they tell.
 */
import { describe, expect, it } from 'vitest';
import { MOST_RATE, type Measured, nextRate, P99_BOUND_MS, sustained } from '../../bench/scale/search.js';

/** A measured rate: on pace with nothing lost or refused unless told otherwise. */
const at = (rate: number, p99: number, over: Partial<Measured> = {}): Measured => ({
  rate, latency: { p50: p99 / 4, p90: p99 / 2, p99, max: p99 * 2 }, lost: 0, failed: 0, achievedRate: rate, ...over,
});

describe('sustained', () => {
  it('holds under the p99 bound with nothing lost or refused and the publisher on pace', () => {
    expect(sustained(at(1000, P99_BOUND_MS - 0.1))).toBe(true);
    expect(sustained(at(1000, 10, { achievedRate: 950 }))).toBe(true);
  });

  it('fails at the bound, with a loss, a refusal, or a publisher behind its rate', () => {
    expect(sustained(at(1000, P99_BOUND_MS))).toBe(false);
    expect(sustained(at(1000, 10, { lost: 1 }))).toBe(false);
    expect(sustained(at(1000, 10, { failed: 1 }))).toBe(false);
    expect(sustained(at(1000, 10, { achievedRate: 949 }))).toBe(false);
  });
});

describe('nextRate', () => {
  it('doubles the highest rate when every rate held, up to the bound of the flag', () => {
    expect(nextRate([at(1000, 5), at(2000, 8)])).toBe(4000);
    expect(nextRate([at(40_000, 5)])).toBe(MOST_RATE);
    expect(nextRate([at(MOST_RATE, 5)])).toBeUndefined();
  });

  it('halves the gap between the highest that held and the lowest above it that did not', () => {
    expect(nextRate([at(1000, 5), at(2000, 8), at(5000, 90), at(10_000, 300)])).toBe(3500);
    expect(nextRate([at(1000, 5), at(2000, 8), at(5000, 90), at(3500, 20)])).toBe(4300);
    // A failure below the highest that held (noise) does not pull the search down.
    expect(nextRate([at(1000, 90), at(2000, 8), at(5000, 90)])).toBe(3500);
  });

  it('searches below the lowest rate when none held', () => {
    expect(nextRate([at(1000, 190), at(2000, 90)])).toBe(500);
    expect(nextRate([at(1000, 190), at(500, 120)])).toBe(300);
  });

  it('stops when the gap is within 10 % (at least 200 msg/s), or nothing was measured', () => {
    expect(nextRate([at(4000, 20), at(4300, 60)])).toBeUndefined();
    expect(nextRate([at(100, 60)])).toBeUndefined();
    expect(nextRate([])).toBeUndefined();
  });
});
