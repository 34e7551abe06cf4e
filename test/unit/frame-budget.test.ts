/**
 * The per-connection budgets of incoming frames: subscribes on their own
 * bucket (a burst of the subscription limit, then a slow refill), each
 * paying for one later unsubscribe, every other frame on the frame rate,
 * and one count of refusals that ends an abusive client. Pure logic: time
 * is passed in.
 */
import { describe, expect, it } from 'vitest';
import { FrameBudget, type Admission, type FrameKind, type FrameLimits } from '../../src/server/core/rate.js';
import { DEFAULT_LIMITS } from '../../src/server/options.js';

const T0 = 1_700_000_000_000;

const takes = (b: FrameBudget, kind: FrameKind, n: number, now: number): Admission[] => Array.from({ length: n }, () => b.take(kind, now));
const count = (got: Admission[], what: Admission): number => got.filter((a) => a === what).length;
/** Subscribe and unsubscribe in a loop: `rounds` of each. */
const churn = (b: FrameBudget, rounds: number, now: number): Admission[] =>
  Array.from({ length: rounds }, () => [b.take('subscribe', now), b.take('unsubscribe', now)]).flat();

describe('FrameBudget', () => {
  it('lets a connection subscribe to its whole subscription limit at once under the defaults, and leave all of it, besides a second of frames', () => {
    const b = new FrameBudget(DEFAULT_LIMITS);
    const max = DEFAULT_LIMITS.maxSubscriptions;
    expect(count(takes(b, 'subscribe', max, T0), 'ok')).toBe(max);
    // The frame rate is untouched by them.
    expect(count(takes(b, 'frame', DEFAULT_LIMITS.maxMessagesPerSecond, T0), 'ok')).toBe(DEFAULT_LIMITS.maxMessagesPerSecond);
    expect(b.take('subscribe', T0)).toBe('limited');
    expect(b.take('frame', T0)).toBe('limited');
    // Each subscribe paid for one unsubscribe.
    expect(count(takes(b, 'unsubscribe', max, T0), 'ok')).toBe(max);
    expect(b.take('unsubscribe', T0)).toBe('limited');
  });

  it('refills subscribes at maxSubscribesPerSecond, up to the subscription limit', () => {
    const limits: FrameLimits = { maxMessagesPerSecond: 100, maxSubscriptions: 50, maxSubscribesPerSecond: 10 };
    const b = new FrameBudget(limits);
    expect(count(takes(b, 'subscribe', 50, T0), 'ok')).toBe(50);
    expect(b.take('subscribe', T0)).toBe('limited');
    expect(b.take('subscribe', T0 + 50)).toBe('limited'); // half a token
    expect(b.take('subscribe', T0 + 100)).toBe('ok'); // one after 100 ms
    expect(count(takes(b, 'subscribe', 11, T0 + 1100), 'ok')).toBe(10); // ten per second
    // However long it was idle, it holds the subscription limit, no more.
    expect(count(takes(b, 'subscribe', 60, T0 + 3_600_000), 'ok')).toBe(50);
  });

  it('holds at least one second of subscribes when the rate is above the subscription limit', () => {
    const b = new FrameBudget({ maxMessagesPerSecond: 100, maxSubscriptions: 5, maxSubscribesPerSecond: 40 });
    expect(b.subscribeBurst).toBe(40);
    expect(count(takes(b, 'subscribe', 50, T0), 'ok')).toBe(40);
  });

  it('charges an unsubscribe nothing paid for to the subscription bucket, and pays for no more than a burst of unsubscribes', () => {
    const b = new FrameBudget({ maxMessagesPerSecond: 100, maxSubscriptions: 10, maxSubscribesPerSecond: 1 });
    expect(count(takes(b, 'unsubscribe', 4, T0), 'ok')).toBe(4); // from the bucket
    expect(count(takes(b, 'subscribe', 7, T0), 'ok')).toBe(6);
    expect(count(takes(b, 'unsubscribe', 7, T0), 'ok')).toBe(6); // paid by the six subscribes
    // A long quiet time later: subscribes paid for beyond the burst do not pile up unsubscribes.
    takes(b, 'subscribe', 10, T0 + 3_600_000);
    expect(count(takes(b, 'subscribe', 10, T0 + 7_200_000), 'ok')).toBe(10);
    expect(count(takes(b, 'unsubscribe', 25, T0 + 7_200_000), 'ok')).toBe(10);
  });

  it('refuses subscribe/unsubscribe churn past the burst, one token a round, and calls it abuse after a burst of refusals within 10 s', () => {
    const b = new FrameBudget({ maxMessagesPerSecond: 30, maxSubscriptions: 100, maxSubscribesPerSecond: 5 });
    const loop = churn(b, 100, T0);
    expect(count(loop, 'ok')).toBe(200);
    // The unsubscribes were paid for; the next subscribe is not.
    expect(churn(b, 50, T0)).toEqual(Array(100).fill('limited'));
    expect(b.take('subscribe', T0 + 10)).toBe('abuse');
  });

  it('never closes a client that retries refused subscribes with backoff while it stays within its subscription limit', () => {
    const b = new FrameBudget(DEFAULT_LIMITS);
    // A whole resubscription, then 100 channels switched for others at once.
    takes(b, 'subscribe', 1000, T0);
    takes(b, 'unsubscribe', 100, T0);
    let waiting = 100;
    const seen: Admission[] = [];
    for (let second = 0; waiting > 0 && second < 60; second++) {
      const got = takes(b, 'subscribe', waiting, T0 + second * 1000);
      seen.push(...got);
      waiting -= count(got, 'ok');
    }
    expect(waiting).toBe(0);
    expect(seen).not.toContain('abuse');
  });

  it('lets churn go on at maxSubscribesPerSecond rounds per second', () => {
    const b = new FrameBudget({ maxMessagesPerSecond: 100, maxSubscriptions: 20, maxSubscribesPerSecond: 5 });
    churn(b, 20, T0);
    const second = churn(b, 10, T0 + 1000);
    expect(second.slice(0, 10)).toEqual(Array(10).fill('ok')); // five rounds
    expect(second.slice(10)).toEqual(Array(10).fill('limited'));
  });

  it('counts refusals per budget, at least 10 each, and forgets them after 10 s', () => {
    const b = new FrameBudget({ maxMessagesPerSecond: 2, maxSubscriptions: 1, maxSubscribesPerSecond: 1 });
    takes(b, 'frame', 2, T0);
    takes(b, 'subscribe', 1, T0);
    expect([...takes(b, 'frame', 10, T0), ...takes(b, 'subscribe', 10, T0)]).toEqual(Array(20).fill('limited'));
    expect(b.take('frame', T0)).toBe('abuse');
    expect(b.take('subscribe', T0)).toBe('abuse');
    // A new window: the client slowed down.
    expect(b.take('subscribe', T0 + 10_000)).toBe('ok');
    expect(takes(b, 'frame', 12, T0 + 10_000)).toEqual([...Array(2).fill('ok'), ...Array(10).fill('limited')]);
    expect(b.take('frame', T0 + 10_000)).toBe('abuse');
  });

  it('keeps the frame rate for every other frame: one second of them, then the refill', () => {
    const b = new FrameBudget({ maxMessagesPerSecond: 10, maxSubscriptions: 1000, maxSubscribesPerSecond: 20 });
    expect(count(takes(b, 'frame', 11, T0), 'ok')).toBe(10);
    expect(b.take('frame', T0 + 100)).toBe('ok');
    expect(b.take('frame', T0 + 100)).toBe('limited');
  });
});
