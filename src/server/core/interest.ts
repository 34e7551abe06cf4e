/**
 * The node's interest: which channels it holds local subscribers of, and
 * what the routing needs at the broker for each of them (a subscription, a
 * registry entry, or nothing) so that their publications reach this node.
 */
import type { Logger } from 'pino';
import type { Broker, Registry } from '../../brokers/broker.js';
import { NO_REGISTRY } from '../../brokers/store.js';
import type { RoutingStrategy } from '../routing/strategies.js';
import type { Session } from './session.js';

/** Channels per registry call when they are all registered again. */
const REGISTER_BATCH = 1000;
/** After the routing has settled, a little more before dropping the registry entries it no longer needs. */
const SETTLE_MARGIN_MS = 500;
/** Unregistrations that failed (broker down) kept for retrying; past this, the oldest are given up. */
const MAX_PENDING_UNREGISTERS = 100_000;

/**
 * A channel's local subscribers: the session itself while it is the only
 * one (the personal channel of a user connected once, the common case), a
 * set of two or more otherwise. A node holds one per local channel, and a
 * set of one would cost some 150 bytes more.
 */
type Local = Session | Set<Session>;

export class Interest {
  /** Local subscribers by channel. */
  private readonly local = new Map<string, Local>();
  /**
   * The broker subscription of each local channel (interest routing):
   * pending (its promise, which every subscriber waits for) or `true` once
   * the broker confirmed it (a held channel keeps no promise: one per
   * connection, for its personal channel).
   */
  private readonly subscribing = new Map<string, Promise<void> | true>();
  /** The registry entry of each local channel that has one (registry, hash-ring routing), pending or `true`, as `subscribing`. */
  private readonly registering = new Map<string, Promise<void> | true>();
  /** Channels whose unregistration the broker did not take, retried when it is back (`reassert`). */
  private readonly pendingUnregisters = new Set<string>();

  /** Runs once the routing has settled after a change, to drop the registry entries it no longer needs. */
  private settleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly broker: Broker,
    private readonly routing: RoutingStrategy,
    /** How long the routing takes to settle after a membership change (`--heartbeat` × `--dead-after-beats`). */
    private readonly settleMs: number,
    private readonly log: Logger,
  ) {}

  /** The local subscribers of `channel`, if it has any. */
  subscribers(channel: string): Iterable<Session> | undefined {
    const local = this.local.get(channel);
    return local === undefined ? undefined : each(local);
  }

  /**
   * The local subscribers of `channel` as they are kept: the session itself
   * when it is the only one, a set otherwise. For the fan-out, which writes
   * to a lone subscriber without wrapping it for iteration.
   */
  subscribersAsKept(channel: string): Session | ReadonlySet<Session> | undefined {
    return this.local.get(channel);
  }

  /** Whether this node holds local subscribers of `channel`. */
  holds(channel: string): boolean {
    return this.local.has(channel);
  }

  /** Every local channel with its subscribers. */
  *channels(): Generator<[string, Iterable<Session>]> {
    for (const [channel, local] of this.local) yield [channel, each(local)];
  }

  /** Count `session` among the subscribers of `channel` (before it waits for `ensure`). */
  join(session: Session, channel: string): void {
    const local = this.local.get(channel);
    if (local === undefined) this.local.set(channel, session);
    else if (local instanceof Set) local.add(session);
    else if (local !== session) this.local.set(channel, new Set([local, session]));
  }

  /**
   * Whether what `ensure` waits for is in place already (the channel's
   * broker subscription or registry entry confirmed, or none needed): the
   * caller may go on without waiting a turn, and its next broker calls
   * share the write of what it sent just before.
   */
  ensured(channel: string): boolean {
    const subscribed = !this.routing.subscribes(channel) || this.subscribing.get(channel) === true;
    const registered = !this.routing.registers(channel) || this.registering.get(channel) === true;
    return subscribed && registered;
  }

  /**
   * What the routing needs before this node can count on receiving
   * `channel`: a broker subscription, a registry entry, or nothing.
   */
  ensure(channel: string): Promise<void> {
    const subscribe = this.routing.subscribes(channel);
    const register = this.routing.registers(channel);
    if (subscribe && register) {
      return Promise.all([this.subscribeOnce(channel), this.registerOnce([channel])]).then(() => undefined);
    }
    if (subscribe) return this.subscribeOnce(channel);
    if (register) return this.registerOnce([channel]);
    return Promise.resolve();
  }

  /**
   * `ensure`, then `read` (a read of `channel`'s history when `reads`), in
   * the round trip of what `ensure` waits for where the broker keeps the
   * read behind it: a registry entry on the connection of the read
   * (`Broker.registryOrdered`), or a subscription the broker can prove
   * (`Broker.readSubscribing`). Else once `ensure` settled.
   */
  readEnsured<T>(channel: string, read: () => Promise<T>, reads: boolean): Promise<T> {
    const ensuring = this.ensure(channel);
    // Without history there is nothing to read.
    if (!reads) return ensuring.then(read);
    const subscribes = this.routing.subscribes(channel);
    const registers = this.routing.registers(channel);
    if (registers && !subscribes && this.broker.registryOrdered) {
      // `ensure` has sent the registration (or a registration in flight holds it): the read follows it.
      const answer = read();
      answer.catch(() => undefined);
      return ensuring.then(() => answer);
    }
    if (subscribes && !registers && this.broker.readSubscribing) return this.broker.readSubscribing(channel, ensuring, read);
    return ensuring.then(read);
  }

  /**
   * `session` leaves `channel`. When it was the last local subscriber the
   * channel's broker subscription and registry entry go too, and the
   * answer is true.
   */
  leave(session: Session, channel: string): boolean {
    const local = this.local.get(channel);
    if (local instanceof Set) {
      if (!local.delete(session)) return false;
      // Back to the session itself once it is the only one left.
      if (local.size === 1) this.local.set(channel, local.values().next().value!);
      return false;
    }
    if (local !== session) return false;
    this.local.delete(channel);
    if (this.subscribing.delete(channel)) {
      this.broker.unsubscribe(channel).catch((err: unknown) => this.log.warn({ err, channel }, 'unsubscribe failed'));
    }
    if (this.registering.delete(channel)) {
      this.registry.unregister([channel]).catch((err: unknown) => {
        this.log.debug({ err, channel }, 'unregister failed; retried when the broker is back');
        if (this.pendingUnregisters.size >= MAX_PENDING_UNREGISTERS) this.pendingUnregisters.delete(this.pendingUnregisters.values().next().value!);
        this.pendingUnregisters.add(channel);
      });
    }
    return true;
  }

  /**
   * The routing changed (or started): register every local channel it now
   * needs an entry for (a settling hash ring), and once it has settled drop
   * the entries it no longer needs.
   */
  rerouted(): void {
    const needed = [...this.local.keys()].filter((c) => this.routing.registers(c));
    if (needed.length > 0) {
      this.registerOnce(needed).catch((err: unknown) => this.log.warn({ err }, 'registering after a ring change failed'));
    }
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => void this.reassert(), this.settleMs + SETTLE_MARGIN_MS);
    this.settleTimer.unref();
  }

  /** Stop the timer of `rerouted`. */
  close(): void {
    if (this.settleTimer) clearTimeout(this.settleTimer);
  }

  /**
   * Register every channel that needs an entry again, drop the entries the
   * routing no longer needs (a hash ring that settled with this node as
   * owner), and retry the unregistrations that failed: after the broker was
   * unreachable, or after another node declared this one dead and dropped
   * its entries.
   */
  async reassert(): Promise<void> {
    if (!this.broker.ready) return;
    const keep: string[] = [];
    const drop = new Set([...this.pendingUnregisters].filter((c) => !this.local.has(c)));
    this.pendingUnregisters.clear();
    for (const channel of this.local.keys()) {
      if (this.routing.registers(channel)) keep.push(channel);
      else if (this.registering.has(channel)) drop.add(channel);
    }
    for (const c of drop) this.registering.delete(c);
    try {
      for (let i = 0; i < keep.length; i += REGISTER_BATCH) {
        // A channel whose last subscriber left meanwhile is not registered again.
        const part = keep.slice(i, i + REGISTER_BATCH).filter((c) => this.local.has(c));
        if (part.length === 0) continue;
        await this.track(this.registering, part, this.registry.register(part));
      }
      if (drop.size > 0) await this.registry.unregister([...drop]);
    } catch (err) {
      for (const c of drop) if (!this.local.has(c)) this.pendingUnregisters.add(c);
      this.log.warn({ err }, 'registering again failed');
    }
  }

  /** The broker's registry (a routing that registers is refused at start on a broker without one). */
  private get registry(): Registry {
    return this.broker.registry ?? NO_REGISTRY;
  }

  private subscribeOnce(channel: string): Promise<void> {
    const held = this.subscribing.get(channel);
    if (held === true) return Promise.resolve();
    if (held) return held;
    return this.track(this.subscribing, [channel], this.broker.subscribe(channel));
  }

  /** Register the channels not registered (or being registered) yet, in one broker call. */
  private registerOnce(channels: string[]): Promise<void> {
    const fresh = channels.filter((c) => !this.registering.has(c));
    const waits: Array<Promise<void>> = [];
    for (const c of channels) {
      const pending = this.registering.get(c);
      if (pending instanceof Promise) waits.push(pending);
    }
    if (fresh.length > 0) {
      waits.push(this.track(this.registering, fresh, this.registry.register(fresh)));
    }
    return Promise.all(waits).then(() => undefined);
  }

  /**
   * Hold `p` for `channels` in `map` until it settles: then `true` once the
   * broker confirmed, or nothing, so that a failure is tried afresh by the
   * next subscriber or when the broker is back (a rejected promise is not
   * kept). An entry that something newer replaced meanwhile is left alone.
   */
  private track(map: Map<string, Promise<void> | true>, channels: readonly string[], p: Promise<void>): Promise<void> {
    for (const c of channels) map.set(c, p);
    const settle = (ok: boolean): void => {
      for (const c of channels) {
        if (map.get(c) !== p) continue;
        if (ok) map.set(c, true);
        else map.delete(c);
      }
    };
    p.then(() => settle(true), () => settle(false));
    return p;
  }
}

/** The sessions of a channel's `Local`, to iterate over. */
function each(local: Local): Iterable<Session> {
  return local instanceof Set ? local : [local];
}
