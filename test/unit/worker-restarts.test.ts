/** When the primary of `--workers N` starts a dead worker again (`RestartPolicy`): pure arithmetic, no processes. */
import { describe, expect, it } from 'vitest';
import { RestartPolicy } from '../../src/server/workers/restarts.js';

const LIMITS = { baseDelayMs: 100, maxDelayMs: 1_000, quickMs: 30_000, maxQuickDeaths: 5 };

describe('worker restart policy', () => {
  it('doubles the delay while the worker keeps dying soon after its start, up to the cap, then gives up', () => {
    const p = new RestartPolicy(LIMITS);
    expect([1, 2, 3, 4, 5].map(() => p.next(50))).toEqual([100, 200, 400, 800, 1_000]);
    expect(p.next(50)).toBeNull();
  });

  it('a worker that stayed up a while starts the count afresh', () => {
    const p = new RestartPolicy(LIMITS);
    expect([p.next(10), p.next(10), p.next(10)]).toEqual([100, 200, 400]);
    expect(p.next(60_000)).toBe(100);
    expect(p.next(10)).toBe(100);
    expect(p.next(10)).toBe(200);
  });

  it('never gives up on a worker that dies only after long runs', () => {
    const p = new RestartPolicy(LIMITS);
    for (let i = 0; i < 50; i++) expect(p.next(3_600_000)).toBe(100);
  });
});
