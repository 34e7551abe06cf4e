/**
 * Quotas on what clients make a node and its broker keep or send: bytes
 * and new channels written per minute (per connection, and per user on
 * this node), history replayed per connection per second, and
 * subscriptions per node. Each refusal is `rate_limited` (or `unavailable`
 * for the node-wide cap), counted in `switchboard_quota_exceeded_total`
 * by quota. Time is passed in (milliseconds) so the logic is testable
 * without clocks.
 */
import { ErrorCode, SwitchboardError } from '../../protocol/index.js';
import type { Metrics } from '../metrics.js';
import type { Limits } from '../options.js';

/** What `switchboard_quota_exceeded_total` counts, by its `quota` label. */
export const QUOTA_NAMES = [
  'connection_publish_bytes',
  'user_publish_bytes',
  'connection_new_channels',
  'user_new_channels',
  'replay_bytes',
  'subscriptions_per_node',
  'connections_per_ip',
  'connections_per_user',
] as const;

export type QuotaName = (typeof QUOTA_NAMES)[number];

/** The limits `Quotas` follows. */
export type QuotaLimits = Pick<
  Limits,
  | 'maxPublishBytesPerMinute'
  | 'maxUserPublishBytesPerMinute'
  | 'maxNewChannelsPerMinute'
  | 'maxUserNewChannelsPerMinute'
  | 'maxReplayBytesPerSecond'
  | 'maxSubscriptionsPerNode'
>;

/** Who writes: a connection (any object standing for it, kept weakly) and its user. */
export interface Writer {
  readonly user: string;
}

const MINUTE = 60_000;
/** A connection's replay budget holds this many seconds' worth: a reconnecting client recovers its channels at once. */
export const REPLAY_BURST_SECONDS = 16;

/** A channel's 32-bit FNV-1a hash: what the windows keep instead of its name (a collision only lets one new channel pass as known). */
function channelKey(channel: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < channel.length; i++) h = Math.imul(h ^ channel.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * One writer's writes in fixed one-minute windows: bytes in this window,
 * and the channels written in this window and the one before (as hashes,
 * a few bytes each). A channel in neither is new. Both sets stay bounded:
 * a writer past its limit of new channels is refused before one is added.
 */
class WriteWindow {
  private start: number;
  bytes = 0;
  /** Channels counted new in this window. */
  fresh = 0;
  private current = new Set<number>();
  private previous = new Set<number>();

  constructor(now: number) {
    this.start = now;
  }

  /** Move to the window `now` falls in. */
  roll(now: number): void {
    if (now - this.start < MINUTE) return;
    this.previous = now - this.start < 2 * MINUTE ? this.current : new Set();
    this.current = new Set();
    this.start = now - ((now - this.start) % MINUTE);
    this.bytes = 0;
    this.fresh = 0;
  }

  isNew(channel: number): boolean {
    return !this.current.has(channel) && !this.previous.has(channel);
  }

  /**
   * Count a write. A new channel is kept (the caller refuses past the
   * limit, so at most `limit` of them); a known one is carried into this
   * window while it holds under twice the limit, so no set grows past
   * three times the limit however many channels a writer rewrites.
   */
  add(channel: number, bytes: number, limit: number): void {
    this.bytes += bytes;
    if (limit <= 0) return;
    if (this.isNew(channel)) {
      this.fresh++;
      this.current.add(channel);
    } else if (this.current.size < 2 * limit) this.current.add(channel);
  }

  /** Milliseconds until this window ends (for the retry hint). */
  left(now: number): number {
    return Math.max(0, this.start + MINUTE - now);
  }

  /** Whether nothing of this window matters any more at `now`. */
  stale(now: number): boolean {
    return now - this.start >= 2 * MINUTE;
  }
}

export class Quotas {
  private readonly connections = new WeakMap<Writer, WriteWindow>();
  /** Per user on this node; windows unused for two minutes are dropped (see `sweep`). */
  private readonly users = new Map<string, WriteWindow>();
  private sweptAt: number;
  /** Each connection's replay bucket, as the time at which it is full again. */
  private readonly replays = new WeakMap<Writer, number>();
  /** Whether any write quota is on; with none, `write` has nothing to count. */
  private readonly countsWrites: boolean;

  constructor(
    private readonly limits: QuotaLimits,
    private readonly metrics: Metrics,
    now = Date.now(),
  ) {
    this.sweptAt = now;
    this.countsWrites =
      limits.maxPublishBytesPerMinute > 0 || limits.maxUserPublishBytesPerMinute > 0 || limits.maxNewChannelsPerMinute > 0 || limits.maxUserNewChannelsPerMinute > 0;
  }

  /**
   * A client write of `bytes` to `channel` (a publish, or a send to a
   * user's channel): counted, or refused with `rate_limited` when it would
   * pass a quota of its connection or of its user on this node.
   */
  write(writer: Writer, channel: string, bytes: number, now: number): void {
    if (!this.countsWrites) return;
    const l = this.limits;
    const key = channelKey(channel);
    const mine = this.windowOf(writer, now);
    const user = this.userWindow(writer.user, now);
    if (l.maxPublishBytesPerMinute > 0 && mine.bytes + bytes > l.maxPublishBytesPerMinute) {
      this.refuse('connection_publish_bytes', `more than ${l.maxPublishBytesPerMinute} bytes published per minute by this connection`, mine.left(now));
    }
    if (l.maxUserPublishBytesPerMinute > 0 && user.bytes + bytes > l.maxUserPublishBytesPerMinute) {
      this.refuse('user_publish_bytes', `more than ${l.maxUserPublishBytesPerMinute} bytes published per minute by this user`, user.left(now));
    }
    if (l.maxNewChannelsPerMinute > 0 && mine.isNew(key) && mine.fresh >= l.maxNewChannelsPerMinute) {
      this.refuse('connection_new_channels', `more than ${l.maxNewChannelsPerMinute} new channels written per minute by this connection`, mine.left(now));
    }
    if (l.maxUserNewChannelsPerMinute > 0 && user.isNew(key) && user.fresh >= l.maxUserNewChannelsPerMinute) {
      this.refuse('user_new_channels', `more than ${l.maxUserNewChannelsPerMinute} new channels written per minute by this user`, user.left(now));
    }
    mine.add(key, bytes, l.maxNewChannelsPerMinute);
    user.add(key, bytes, l.maxUserNewChannelsPerMinute);
  }

  /**
   * Before a subscribe that replays history: refused with `rate_limited`
   * while the connection's replay budget is spent (it refills at
   * `maxReplayBytesPerSecond`, holding `REPLAY_BURST_SECONDS` of it).
   */
  checkReplay(writer: Writer, now: number): void {
    const rate = this.limits.maxReplayBytesPerSecond;
    if (rate <= 0) return;
    const fullAt = this.replays.get(writer) ?? now;
    const over = fullAt - now - REPLAY_BURST_SECONDS * 1000;
    if (over > 0) this.refuse('replay_bytes', `more than ${rate} bytes of history replayed per second to this connection`, over);
  }

  /** A replay of `bytes` was sent: the budget pays for it (a large one may leave it in debt, which later subscribes wait out). */
  replayed(writer: Writer, bytes: number, now: number): void {
    const rate = this.limits.maxReplayBytesPerSecond;
    if (rate <= 0 || bytes <= 0) return;
    this.replays.set(writer, Math.max(this.replays.get(writer) ?? now, now) + (bytes / rate) * 1000);
  }

  /** Before a subscribe: refused with `unavailable` when this node holds `maxSubscriptionsPerNode` already (another node may have room). */
  checkNodeSubscriptions(held: number): void {
    const max = this.limits.maxSubscriptionsPerNode;
    if (max > 0 && held >= max) {
      this.metrics.quotaExceeded.inc({ quota: 'subscriptions_per_node' });
      throw new SwitchboardError(ErrorCode.Unavailable, `this node holds its limit of ${max} subscriptions: retry later or connect to another node`);
    }
  }

  /** Users with a window kept (for tests: stays bounded). */
  get trackedUsers(): number {
    return this.users.size;
  }

  private windowOf(writer: Writer, now: number): WriteWindow {
    let w = this.connections.get(writer);
    if (!w) this.connections.set(writer, (w = new WriteWindow(now)));
    w.roll(now);
    return w;
  }

  private userWindow(user: string, now: number): WriteWindow {
    if (now - this.sweptAt >= MINUTE) this.sweep(now);
    let w = this.users.get(user);
    if (!w) this.users.set(user, (w = new WriteWindow(now)));
    w.roll(now);
    return w;
  }

  /** Drop the users whose windows no longer matter: the map holds at most the users that wrote in the last two minutes. */
  private sweep(now: number): void {
    this.sweptAt = now;
    for (const [user, w] of this.users) if (w.stale(now)) this.users.delete(user);
  }

  private refuse(quota: QuotaName, what: string, retryMs: number): never {
    this.metrics.quotaExceeded.inc({ quota });
    throw new SwitchboardError(ErrorCode.RateLimited, `quota: ${what}: retry in ${Math.ceil(retryMs / 1000)} s`);
  }
}
