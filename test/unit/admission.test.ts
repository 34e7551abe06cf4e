import { describe, expect, it } from 'vitest';
import { Admission } from '../../src/server/core/admission.js';

const T0 = 1_700_000_000_000;

/** Enter `n` times at `now`; the admitted ones are returned for `done()`. */
function enterMany(a: Admission, n: number, now: number): { admitted: Array<() => void>; reasons: string[] } {
  const admitted: Array<() => void> = [];
  const reasons: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = a.enter(now);
    if (r.ok) admitted.push(r.done);
    else reasons.push(r.reason);
  }
  return { admitted, reasons };
}

describe('Admission', () => {
  it('admits a burst of one second of the rate, then refuses with handshake_rate', () => {
    const a = new Admission({ perSecond: 100, inFlight: 0 }, T0);
    const { admitted, reasons } = enterMany(a, 130, T0);
    expect(admitted).toHaveLength(100);
    expect(new Set(reasons)).toEqual(new Set(['handshake_rate']));
  });

  it('refills at the rate: over a second it admits about `perSecond` more', () => {
    const a = new Admission({ perSecond: 100, inFlight: 0 }, T0);
    enterMany(a, 100, T0);
    let admitted = 0;
    for (let t = 1; t <= 1000; t++) admitted += enterMany(a, 5, T0 + t).admitted.length;
    // Refilled in fractions of a token per millisecond: floating point may leave the last one just short.
    expect(admitted).toBeGreaterThanOrEqual(99);
    expect(admitted).toBeLessThanOrEqual(100);
  });

  it('caps handshakes in flight; done() frees a slot once, however often it is called', () => {
    const a = new Admission({ perSecond: 0, inFlight: 3 }, T0);
    const { admitted, reasons } = enterMany(a, 5, T0);
    expect(admitted).toHaveLength(3);
    expect(reasons).toEqual(['handshakes_in_flight', 'handshakes_in_flight']);
    expect(a.inFlight).toBe(3);
    admitted[0]!();
    admitted[0]!();
    expect(a.inFlight).toBe(2);
    expect(enterMany(a, 2, T0).admitted).toHaveLength(1);
  });

  it('a refusal for the in-flight cap spends no token of the rate', () => {
    const a = new Admission({ perSecond: 1, inFlight: 1 }, T0); // burst 1, one token a second
    const first = a.enter(T0);
    expect(first.ok).toBe(true);
    expect(a.enter(T0)).toEqual({ ok: false, reason: 'handshakes_in_flight' });
    if (first.ok) first.done();
    // 1 s later one token has refilled; the refused attempt above did not take it (nor one after).
    expect(a.enter(T0 + 1000).ok).toBe(true);
  });

  it('0 disables each cap', () => {
    const a = new Admission({ perSecond: 0, inFlight: 0 }, T0);
    expect(enterMany(a, 10_000, T0).admitted).toHaveLength(10_000);
    expect(a.inFlight).toBe(10_000);
  });
});
