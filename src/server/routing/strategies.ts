/**
 * The routing strategies: how a publication finds the nodes that hold its
 * subscribers (`--routing`). The gateway asks its strategy where a
 * publication goes (`route`), what this node must do while it has local
 * subscribers of a channel: subscribe to it at the broker (`subscribes`)
 * and/or register in the broker's registry (`registers`), and which node
 * owns a user (`owner`, for redirects); it tells the strategy when the
 * cluster's membership changes (`membersChanged`).
 *
 * - `interest`: the broker fans out to the nodes subscribed to the channel.
 * - `broadcast`: every publication goes to every node; nothing to keep.
 * - `registry`: nodes register the channels they hold; a publication goes
 *   to the registered nodes' inboxes only.
 * - `hashring`: a consistent-hash ring over the live nodes gives every user
 *   an owner node; a message to a user goes to the owner's inbox (to every
 *   node for a few seconds after membership changes). A node
 *   holding a user it does not own (any user is accepted behind a plain load
 *   balancer) registers that personal channel, so the message reaches it
 *   too. Other channels (rooms) are routed through the registry.
 *
 * Registry and hash-ring routes are resolved by the broker atomically with
 * storing the publication (see `Route`), which is why a subscriber that
 * registers before reading history can miss nothing.
 */
import { personalChannelUser } from '../../protocol/index.js';
import { TO_SUBSCRIBERS, type Route } from '../../brokers/broker.js';
import type { RoutingName } from '../options.js';
import { HashRing } from './ring.js';

export interface RoutingStrategy {
  readonly name: RoutingName;
  /** The broker routes this strategy uses (`Broker.routes` must hold them all). */
  readonly needs: ReadonlyArray<Route['to']>;
  /** Where a publication on `channel` goes. */
  route(channel: string): Route;
  /** Whether a node with local subscribers of `channel` subscribes to it at the broker. */
  subscribes(channel: string): boolean;
  /** Whether a node with local subscribers of `channel` must be registered for it now. */
  registers(channel: string): boolean;
  /** The node that owns `user`, for strategies that assign users to nodes; undefined when any node will do. */
  owner(user: string): string | undefined;
  /** Follow the live membership of the cluster; true when the routing changed. */
  membersChanged(members: Iterable<string>): boolean;
}

/** What strategies that assign no users to nodes answer: no owner, and membership changes nothing. */
abstract class Unowned {
  owner(_user: string): undefined {
    return undefined;
  }
  membersChanged(_members: Iterable<string>): boolean {
    return false;
  }
}

const TO_ALL: Route = { to: 'all' };
const TO_REGISTERED: Route = { to: 'nodes', nodes: [], registered: true };

export class InterestRouting extends Unowned implements RoutingStrategy {
  readonly name = 'interest';
  readonly needs = ['subscribers'] as const;
  route(): Route {
    return TO_SUBSCRIBERS;
  }
  subscribes(): boolean {
    return true;
  }
  registers(): boolean {
    return false;
  }
}

export class BroadcastRouting extends Unowned implements RoutingStrategy {
  readonly name = 'broadcast';
  readonly needs = ['all'] as const;
  route(): Route {
    return TO_ALL;
  }
  subscribes(): boolean {
    return false;
  }
  registers(): boolean {
    return false;
  }
}

export class RegistryRouting extends Unowned implements RoutingStrategy {
  readonly name = 'registry';
  readonly needs = ['nodes'] as const;
  route(): Route {
    return TO_REGISTERED;
  }
  subscribes(): boolean {
    return false;
  }
  registers(): boolean {
    return true;
  }
}

/**
 * Hash-ring routing. Membership is learned by heartbeats, so two nodes can
 * disagree about the ring for a moment after a node joins or dies (and a
 * node that just started knows nobody yet). For `settleMs` after a change
 * of its ring, and after it starts, a node therefore (a) sends messages to
 * users to every node, as broadcast does, and (b) registers every personal
 * channel it holds, owned or not. Whichever of publisher and holder sees the
 * change first, the other's view still reaches the holder. `settleMs` must
 * exceed the time the cluster takes to agree (heartbeat × dead-after-beats
 * is used).
 */
export class HashRingRouting implements RoutingStrategy {
  readonly name = 'hashring';
  readonly needs = ['nodes', 'all'] as const;
  private ring: HashRing;
  /** Until when the ring counts as unsettled (ms, `now()` clock). */
  private unsettledUntil: number;

  constructor(
    readonly self: string,
    private readonly vnodes: number,
    private readonly settleMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.ring = new HashRing([self], vnodes);
    // A node that just started has not heard of the others yet.
    this.unsettledUntil = now() + settleMs;
  }

  /** The ring now in force. */
  get current(): HashRing {
    return this.ring;
  }

  /** Follow the live membership (this node included); true when the ring changed. */
  update(members: Iterable<string>): boolean {
    const next = new HashRing([this.self, ...members], this.vnodes);
    if (next.sameNodes(this.ring)) return false;
    this.ring = next;
    this.unsettledUntil = this.now() + this.settleMs;
    return true;
  }

  /** No ring change (nor start) within `settleMs`. */
  get settled(): boolean {
    return this.now() >= this.unsettledUntil;
  }

  membersChanged(members: Iterable<string>): boolean {
    return this.update(members);
  }

  /** The owner of `user` on the current ring. */
  owner(user: string): string {
    return this.ring.owner(user) ?? this.self;
  }

  route(channel: string): Route {
    const user = personalChannelUser(channel);
    if (user === undefined) return TO_REGISTERED;
    return this.settled ? { to: 'nodes', nodes: [this.owner(user)], registered: true } : TO_ALL;
  }

  subscribes(): boolean {
    return false;
  }

  registers(channel: string): boolean {
    const user = personalChannelUser(channel);
    if (user === undefined) return true;
    return !this.settled || this.owner(user) !== this.self;
  }
}

export function createRouting(
  name: RoutingName,
  self: string,
  hashring: { vnodes: number; settleMs: number },
): RoutingStrategy {
  switch (name) {
    case 'interest':
      return new InterestRouting();
    case 'broadcast':
      return new BroadcastRouting();
    case 'registry':
      return new RegistryRouting();
    case 'hashring':
      return new HashRingRouting(self, hashring.vnodes, hashring.settleMs);
  }
}
