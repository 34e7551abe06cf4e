/**
 * The webhook verdict of the chaos suite on hand-made records: it must see
 * a lost transition, one reported twice under two ids, events out of order,
 * a repeat with other content, a user left online, and a count of onlines
 * the sessions do not allow; and it must allow what the cluster cannot
 * know (a user back before the close of its last session was applied).
 */
import { describe, expect, it } from 'vitest';
import { accountPresence, onlineRange, type Accepted, type SessionSpan } from '../helpers/chaos/presence-events.js';
import type { WebhookEvent } from '../../src/server-sdk/index.js';

/** A session surely there from `from` to `until`, and at most 50 ms beyond each end. */
const span = (from: number, until: number, user = 'u'): SessionSpan => ({ user, sure: { from, until }, may: { from: from - 50, until: until + 50 } });
let ids = 0;
const ev = (type: 'online' | 'offline', ts: number, user = 'u', id = `0-${++ids}`): WebhookEvent => ({ id, type, ts, node: 'n1', user });
const at = (event: WebhookEvent, delay = 10): Accepted => ({ event, at: event.ts + delay });

describe('chaos webhook verdict', () => {
  it('is clean when each stretch of sessions is one online and one offline, in order', () => {
    const spans = [span(0, 100), span(50, 200), span(1000, 1100)];
    const a = accountPresence(spans, [ev('online', 0), ev('offline', 200), ev('online', 1000), ev('offline', 1100)].map((e) => at(e)));
    expect(a).toMatchObject({ users: 1, transitions: 4, duplicates: 0, altered: 0, doubled: 0, outOfOrder: 0, notOffline: 0, miscounted: 0, exact: 1, maxDelayMs: 10 });
    expect(a.problems).toEqual([]);
  });

  it('counts an identical repeat as a duplicate, and a repeat with other content as altered', () => {
    const on = ev('online', 0);
    const off = ev('offline', 100);
    const same = accountPresence([span(0, 100)], [at(on), at(on, 500), at(off)]);
    expect(same).toMatchObject({ transitions: 2, duplicates: 1, altered: 0, doubled: 0 });
    const other = accountPresence([span(0, 100)], [at(on), at({ ...on, node: 'n2' }, 500), at(off)]);
    expect(other.altered).toBe(1);
  });

  it('sees a lost transition, and one reported twice under two ids, as two of a kind in a row', () => {
    const spans = [span(0, 100), span(1000, 1100)];
    const lost = accountPresence(spans, [ev('online', 0), ev('online', 1000), ev('offline', 1100)].map((e) => at(e)));
    expect(lost.doubled).toBe(1);
    const twice = accountPresence([span(0, 100)], [ev('online', 0), ev('online', 0), ev('offline', 100)].map((e) => at(e)));
    expect(twice.doubled).toBe(1);
    const offFirst = accountPresence([span(0, 100)], [at(ev('offline', 100))]);
    expect(offFirst.doubled).toBe(1);
  });

  it('sees events of a user out of order, and a user whose last event is not offline', () => {
    const spans = [span(0, 100), span(1000, 1100)];
    const swapped = accountPresence(spans, [ev('online', 0), ev('offline', 1100), ev('online', 1000), ev('offline', 100)].map((e) => at(e)));
    expect(swapped.outOfOrder).toBeGreaterThan(0);
    const left = accountPresence([span(0, 100)], [at(ev('online', 0))]);
    expect(left.notOffline).toBe(1);
    const none = accountPresence([span(0, 100)], []);
    expect(none).toMatchObject({ notOffline: 1, miscounted: 1 });
  });

  it('sees an extra online/offline pair, and a missing one, against sessions whose gaps are known', () => {
    const spans = [span(0, 100), span(1000, 1100)];
    const pairs = (n: number): Accepted[] => Array.from({ length: n }, (_, i) => [at(ev('online', i * 10)), at(ev('offline', i * 10 + 5))]).flat();
    expect(accountPresence(spans, pairs(3)).miscounted).toBe(1);
    expect(accountPresence(spans, pairs(1)).miscounted).toBe(1);
    expect(accountPresence(spans, pairs(2)).miscounted).toBe(0);
  });

  it('allows one or two onlines when the next session may have come before the close was applied', () => {
    const close = { user: 'u', sure: { from: 0, until: 100 }, may: { from: 0, until: 600 } };
    const back = span(400, 900);
    expect(onlineRange([close, back])).toEqual({ min: 1, max: 2 });
  });

  it('lets a session whose handshake a fault cut add at most one online, and never require one', () => {
    const cut: SessionSpan = { user: 'u', may: { from: 200, until: 300 } };
    expect(onlineRange([span(0, 100), cut])).toEqual({ min: 1, max: 2 });
    expect(onlineRange([cut])).toEqual({ min: 0, max: 1 });
  });
});
