/**
 * The quota arithmetic without sockets: time passed in.
 */
import { describe, expect, it } from 'vitest';
import { ConnectionCaps } from '../../src/server/core/caps.js';
import { Quotas, type QuotaLimits } from '../../src/server/core/quotas.js';
import { Metrics } from '../../src/server/metrics.js';

const T0 = 1_000_000;
const NONE: QuotaLimits = {
  maxPublishBytesPerMinute: 0,
  maxUserPublishBytesPerMinute: 0,
  maxNewChannelsPerMinute: 0,
  maxUserNewChannelsPerMinute: 0,
  maxReplayBytesPerSecond: 0,
  maxSubscriptionsPerNode: 0,
};

const quotas = (limits: Partial<QuotaLimits>) => new Quotas({ ...NONE, ...limits }, new Metrics({ node: 'test' }), T0);
const refusal = (f: () => void): string | undefined => {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as { code: string }).code;
  }
};

describe('Quotas', () => {
  it('counts bytes per connection per minute, and starts afresh the next minute', () => {
    const q = quotas({ maxPublishBytesPerMinute: 1000 });
    const conn = { user: 'u' };
    q.write(conn, 'a', 600, T0);
    expect(refusal(() => q.write(conn, 'a', 500, T0 + 1000))).toBe('rate_limited');
    q.write(conn, 'a', 400, T0 + 2000);
    // Another connection of the same user has its own.
    q.write({ user: 'u' }, 'a', 1000, T0 + 2000);
    q.write(conn, 'a', 1000, T0 + 60_000);
  });

  it('a channel written in this minute or the one before is not new; the sets stay bounded by the limit', () => {
    const q = quotas({ maxNewChannelsPerMinute: 3 });
    const conn = { user: 'u' };
    for (const ch of ['a', 'b', 'c', 'a', 'b']) q.write(conn, ch, 1, T0);
    expect(refusal(() => q.write(conn, 'd', 1, T0))).toBe('rate_limited');
    // Next minute: a, b, c written in the minute before are not new.
    for (const ch of ['a', 'b', 'c', 'd', 'e', 'f']) q.write(conn, ch, 1, T0 + 61_000);
    expect(refusal(() => q.write(conn, 'g', 1, T0 + 62_000))).toBe('rate_limited');
    // Two quiet minutes later everything is new again.
    for (const ch of ['x', 'y', 'z']) q.write(conn, ch, 1, T0 + 240_000);
    expect(refusal(() => q.write(conn, 'a', 1, T0 + 240_000))).toBe('rate_limited');
  });

  it('counts per user across connections and forgets users idle for two minutes', () => {
    const q = quotas({ maxUserPublishBytesPerMinute: 100 });
    q.write({ user: 'u' }, 'a', 60, T0);
    expect(refusal(() => q.write({ user: 'u' }, 'a', 60, T0))).toBe('rate_limited');
    for (let i = 0; i < 1000; i++) q.write({ user: `many-${i}` }, 'a', 1, T0 + 1000);
    expect(q.trackedUsers).toBe(1001);
    q.write({ user: 'late' }, 'a', 1, T0 + 200_000);
    expect(q.trackedUsers).toBe(1);
  });

  it('budgets replay bytes per connection: a burst of 16 s worth, then the refill rate', () => {
    const q = quotas({ maxReplayBytesPerSecond: 1000 });
    const conn = { user: 'u' };
    q.checkReplay(conn, T0);
    q.replayed(conn, 16_000, T0);
    q.checkReplay(conn, T0);
    q.replayed(conn, 500, T0);
    expect(refusal(() => q.checkReplay(conn, T0))).toBe('rate_limited');
    expect(refusal(() => q.checkReplay(conn, T0 + 400))).toBe('rate_limited');
    q.checkReplay(conn, T0 + 500);
    // Another connection has its own budget.
    q.checkReplay({ user: 'u' }, T0);
  });

  it('refuses subscribes at the node cap with unavailable', () => {
    const q = quotas({ maxSubscriptionsPerNode: 10 });
    q.checkNodeSubscriptions(9);
    expect(refusal(() => q.checkNodeSubscriptions(10))).toBe('unavailable');
    quotas({}).checkNodeSubscriptions(1e9);
  });
});

describe('ConnectionCaps', () => {
  it('holds a place per IP and per user until released, once however often released', () => {
    const caps = new ConnectionCaps({ maxConnectionsPerIp: 2, maxConnectionsPerUser: 1 });
    const [a, b, c, d, e] = [{}, {}, {}, {}, {}];
    expect(caps.enter(a, '1.1.1.1', 'a')).toBeUndefined();
    expect(caps.enter(e, '2.2.2.2', 'a')).toBe('connections_per_user');
    expect(caps.enter(b, '1.1.1.1', 'b')).toBeUndefined();
    expect(caps.enter(c, '1.1.1.1', 'c')).toBe('connections_per_ip');
    caps.leave(a);
    caps.leave(a);
    caps.leave(e);
    expect(caps.size).toEqual({ ips: 1, users: 1 });
    expect(caps.enter(c, '1.1.1.1', 'c')).toBeUndefined();
    expect(caps.enter(d, '1.1.1.1', 'd')).toBe('connections_per_ip');
    caps.leave(b);
    expect(caps.size).toEqual({ ips: 1, users: 1 });
  });

  it('keeps nothing for a cap at 0, and still enforces the other', () => {
    const caps = new ConnectionCaps({ maxConnectionsPerIp: 0, maxConnectionsPerUser: 1 });
    const [a, b] = [{}, {}];
    expect(caps.enter(a, '1.1.1.1', 'a')).toBeUndefined();
    expect(caps.size).toEqual({ ips: 0, users: 1 });
    expect(caps.enter(b, '1.1.1.1', 'a')).toBe('connections_per_user');
    caps.leave(a);
    expect(caps.enter(b, '1.1.1.1', 'a')).toBeUndefined();
    const off = new ConnectionCaps({ maxConnectionsPerIp: 0, maxConnectionsPerUser: 0 });
    for (let i = 0; i < 3; i++) expect(off.enter({}, '1.1.1.1', 'a')).toBeUndefined();
    expect(off.size).toEqual({ ips: 0, users: 0 });
  });
});
