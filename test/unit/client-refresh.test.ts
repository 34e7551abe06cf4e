/**
 * The SDK's token refresher on fake timers: when it refreshes, how it
 * retries, and that it stops (and ignores late answers) once stopped.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { refreshDelay, TokenRefresher } from '../../src/client/refresh.js';
import type { RefreshResult } from '../../src/protocol/index.js';

describe('refreshDelay', () => {
  const none = (): number => 0;
  it('refreshes 30 s before a long expiry, or with 10% left, whichever is earlier', () => {
    expect(refreshDelay(60_000, 0, none)).toBe(30_000);
    expect(refreshDelay(3_600_000, 0, none)).toBe(3_240_000);
  });
  it('refreshes a short-lived token at half its time, never in a loop', () => {
    expect(refreshDelay(10_000, 0, none)).toBe(5_000);
    expect(refreshDelay(2_000, 0, none)).toBe(1_000);
  });
  it('jitters earlier by up to 10%, never later', () => {
    expect(refreshDelay(60_000, 0, () => 0.999)).toBeGreaterThan(27_000);
    expect(refreshDelay(60_000, 0, () => 0.999)).toBeLessThan(30_000);
  });
  it('backs retries off, within half the time left', () => {
    expect([1, 2, 3].map((a) => refreshDelay(60_000, a, none))).toEqual([1_000, 2_000, 4_000]);
    expect(refreshDelay(3_000, 3, none)).toBe(1_500);
  });
});

describe('TokenRefresher', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  const nowS = (): number => Math.floor(Date.now() / 1000);

  it('sends a fresh token before each expiry, following the expiry each reply gives', async () => {
    const sent: string[] = [];
    let n = 0;
    const r = new TokenRefresher(
      { getToken: async () => `t${++n}`, random: () => 0 },
      { send: async (token): Promise<RefreshResult> => (sent.push(token), { expires: nowS() + 60 }), onError: () => undefined },
    );
    r.start(nowS() + 60);
    await vi.advanceTimersByTimeAsync(29_000);
    expect(sent).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sent).toEqual(['t1']);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(sent).toEqual(['t1', 't2']);
    r.stop();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(sent).toEqual(['t1', 't2']);
  });

  it('retries a failing getToken a few times before the expiry, reporting each failure, then gives up', async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const r = new TokenRefresher(
      { getToken: async () => { calls++; throw new Error('down'); }, random: () => 0 },
      { send: async () => ({}), onError: (err) => errors.push(err) },
    );
    r.start(nowS() + 60);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toBe(4);
    expect(errors).toHaveLength(4);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toBe(4);
  });

  it('does nothing without an expiry or without getToken', async () => {
    let calls = 0;
    const deps = { send: async () => ({}), onError: () => undefined };
    new TokenRefresher({ getToken: async () => `t${++calls}`, random: () => 0 }, deps).start(undefined);
    new TokenRefresher({ random: () => 0 }, deps).start(nowS() + 10);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toBe(0);
  });

  it('ignores an answer that comes after stop', async () => {
    const sent: string[] = [];
    let release: (t: string) => void = () => undefined;
    const r = new TokenRefresher(
      { getToken: () => new Promise<string>((resolve) => (release = resolve)), random: () => 0 },
      { send: async (token) => (sent.push(token), {}), onError: () => undefined },
    );
    r.start(nowS() + 10);
    await vi.advanceTimersByTimeAsync(5_000);
    r.stop();
    release('late');
    await vi.advanceTimersByTimeAsync(1);
    expect(sent).toEqual([]);
  });
});
