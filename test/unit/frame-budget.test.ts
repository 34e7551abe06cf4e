/**
 * The per-connection budgets of incoming frames: subscription changes on
 * their own bucket (a burst of the subscription limit, then a slow refill),
 * every other frame on the frame rate, and one count of refusals that ends
 * an abusive client. Pure logic: time is passed in.
 */
import { describe, expect, it } from 'vitest';
import { FrameBudget, type Admission, type Budget, type FrameLimits } from '../../src/server/core/rate.js';
import { DEFAULT_LIMITS } from '../../src/server/options.js';

const T0 = 1_700_000_000_000;

const takes = (b: FrameBudget, budget: Budget, n: number, now: number): Admission[] => Array.from({ length: n }, () => b.take(budget, now));
const count = (got: Admission[], what: Admission): number => got.filter((a) => a === what).length;

describe('FrameBudget', () => {
  it('lets a connection change its whole subscription limit at once under the defaults, besides a second of frames', () => {
    const b = new FrameBudget(DEFAULT_LIMITS, T0);
    expect(count(takes(b, 'subscriptions', DEFAULT_LIMITS.maxSubscriptions, T0), 'ok')).toBe(DEFAULT_LIMITS.maxSubscriptions);
    // The frame rate is untouched by them.
    expect(count(takes(b, 'frames', DEFAULT_LIMITS.maxMessagesPerSecond, T0), 'ok')).toBe(DEFAULT_LIMITS.maxMessagesPerSecond);
    expect(b.take('subscriptions', T0)).toBe('limited');
    expect(b.take('frames', T0)).toBe('limited');
  });

  it('refills subscription changes at maxSubscribesPerSecond, up to the subscription limit', () => {
    const limits: FrameLimits = { maxMessagesPerSecond: 100, maxSubscriptions: 50, maxSubscribesPerSecond: 10 };
    const b = new FrameBudget(limits, T0);
    expect(count(takes(b, 'subscriptions', 50, T0), 'ok')).toBe(50);
    expect(b.take('subscriptions', T0)).toBe('limited');
    expect(b.take('subscriptions', T0 + 50)).toBe('limited'); // half a token
    expect(b.take('subscriptions', T0 + 100)).toBe('ok'); // one after 100 ms
    expect(count(takes(b, 'subscriptions', 11, T0 + 1100), 'ok')).toBe(10); // ten per second
    // However long it was idle, it holds the subscription limit, no more.
    expect(count(takes(b, 'subscriptions', 60, T0 + 3_600_000), 'ok')).toBe(50);
  });

  it('holds at least one second of subscription changes when the rate is above the subscription limit', () => {
    const b = new FrameBudget({ maxMessagesPerSecond: 100, maxSubscriptions: 5, maxSubscribesPerSecond: 40 }, T0);
    expect(count(takes(b, 'subscriptions', 50, T0), 'ok')).toBe(40);
  });

  it('refuses churn past the burst and calls it abuse after max(10, maxMessagesPerSecond) refusals within 10 s', () => {
    const b = new FrameBudget({ maxMessagesPerSecond: 30, maxSubscriptions: 100, maxSubscribesPerSecond: 5 }, T0);
    // Subscribe and unsubscribe in a loop: one token each.
    const loop = takes(b, 'subscriptions', 100 + 30, T0);
    expect(count(loop.slice(0, 100), 'ok')).toBe(100);
    expect(loop.slice(100)).toEqual(Array(30).fill('limited'));
    expect(b.take('subscriptions', T0 + 10)).toBe('abuse');
  });

  it('counts refusals of both budgets together, and forgets them after 10 s', () => {
    const b = new FrameBudget({ maxMessagesPerSecond: 2, maxSubscriptions: 1, maxSubscribesPerSecond: 1 }, T0);
    takes(b, 'frames', 2, T0);
    takes(b, 'subscriptions', 1, T0);
    expect([...takes(b, 'frames', 5, T0), ...takes(b, 'subscriptions', 5, T0)]).toEqual(Array(10).fill('limited'));
    expect(b.take('frames', T0)).toBe('abuse');
    // A new window: the client slowed down.
    expect(b.take('subscriptions', T0 + 10_000)).toBe('ok');
    expect(takes(b, 'frames', 12, T0 + 10_000)).toEqual([...Array(2).fill('ok'), ...Array(10).fill('limited')]);
    expect(b.take('frames', T0 + 10_000)).toBe('abuse');
  });

  it('keeps the frame rate for every other frame: one second of them, then the refill', () => {
    const b = new FrameBudget({ maxMessagesPerSecond: 10, maxSubscriptions: 1000, maxSubscribesPerSecond: 20 }, T0);
    expect(count(takes(b, 'frames', 11, T0), 'ok')).toBe(10);
    expect(b.take('frames', T0 + 100)).toBe('ok');
    expect(b.take('frames', T0 + 100)).toBe('limited');
  });
});
