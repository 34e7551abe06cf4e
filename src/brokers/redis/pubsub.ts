/**
 * Where subscriptions live. Standalone Redis: one subscriber connection
 * with classic SUBSCRIBE. Redis Cluster: sharded pub/sub (SSUBSCRIBE), one
 * subscriber connection per master, each channel held on the master that
 * owns its slot, so a publication is handled by one shard instead of being
 * broadcast over the cluster bus. The routing follows the cluster's slot
 * table and moves channels when it changes.
 */
import type { Cluster, Redis } from 'ioredis';
import { BrokerError } from '../errors.js';
import { SubscriberLink, type LinkHooks } from './link.js';
import { keySlot } from './slot.js';
import type { RedisEndpoint } from './url.js';

export interface PubSub {
  /** Connected, and every wanted channel is in place. */
  readonly inSync: boolean;
  /** Open the connections; `inSync` turns true once they are up and restored. */
  connect(): void;
  subscribe(name: string): Promise<void>;
  unsubscribe(name: string): Promise<void>;
  /** Health check of every connection. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** One subscriber connection with classic SUBSCRIBE (standalone Redis; a cluster node's inbox builds on it). */
export class ClassicPubSub implements PubSub {
  protected readonly link: SubscriberLink;

  constructor(conn: Redis, hooks: LinkHooks, maxBatch?: number, label = 'subscriber') {
    this.link = new SubscriberLink(conn, 'classic', hooks, label, maxBatch);
  }

  get inSync(): boolean {
    return this.link.inSync;
  }

  connect(): void {
    this.link.connect();
  }

  subscribe(name: string): Promise<void> {
    return this.link.interest.add(name);
  }

  unsubscribe(name: string): Promise<void> {
    return this.link.interest.remove(name);
  }

  ping(): Promise<void> {
    return this.link.ping();
  }

  close(): Promise<void> {
    return this.link.close();
  }
}

const noop = (): void => undefined;
const MOVED_PAUSE_MS = 100;

export class ShardedPubSub implements PubSub {
  /** One link per master, by `host:port`. */
  private readonly links = new Map<string, SubscriberLink>();
  /** The link each wanted channel is held on, and the channel's slot (computed once). */
  private readonly routes = new Map<string, { link: SubscriberLink; slot: number }>();
  private closed = false;
  /** Channels moved to another master whose subscription there is not confirmed yet. */
  private moves = 0;
  /** Links with a slot-move round under way (see `moved`). */
  private readonly moving = new Set<string>();
  private readonly onRefresh = (): void => this.reroute();

  constructor(
    private readonly cluster: Cluster,
    private readonly makeConnection: (endpoint: RedisEndpoint, label: string) => Redis,
    private readonly hooks: LinkHooks,
    private readonly maxBatch?: number,
  ) {
    cluster.on('refresh', this.onRefresh);
  }

  /** Every master's link is up and restored: a channel can be subscribed wherever its slot lives. */
  get inSync(): boolean {
    if (this.closed || this.links.size === 0 || this.moves > 0) return false;
    for (const link of this.links.values()) if (!link.inSync) return false;
    return true;
  }

  /** Links to every master the cluster client knows (it must be ready: its slot table is loaded). */
  connect(): void {
    this.reroute();
  }

  subscribe(name: string): Promise<void> {
    const slot = this.routes.get(name)?.slot ?? keySlot(name);
    const link = this.owner(slot);
    if (!link) return Promise.reject(new BrokerError('unavailable', 'redis cluster slots are not known yet'));
    const previous = this.routes.get(name)?.link;
    if (previous && previous !== link) previous.interest.remove(name).catch(noop);
    this.routes.set(name, { link, slot });
    return link.interest.add(name);
  }

  unsubscribe(name: string): Promise<void> {
    const link = this.routes.get(name)?.link;
    this.routes.delete(name);
    return link ? link.interest.remove(name) : Promise.resolve();
  }

  async ping(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.ping()));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cluster.off('refresh', this.onRefresh);
    const links = [...this.links.values()];
    this.links.clear();
    this.routes.clear();
    await Promise.all(links.map((l) => l.close()));
  }

  /** The link to the master of `slot`, opened on first use. */
  private owner(slot: number): SubscriberLink | undefined {
    const key = this.cluster.slots[slot]?.[0];
    return key === undefined ? undefined : this.linkTo(key);
  }

  private linkTo(key: string): SubscriberLink | undefined {
    if (this.closed) return undefined;
    let link = this.links.get(key);
    if (link) return link;
    const colon = key.lastIndexOf(':');
    const endpoint = { host: key.slice(0, colon), port: Number(key.slice(colon + 1)) };
    const label = `sharded subscriber ${key}`;
    link = new SubscriberLink(
      this.makeConnection(endpoint, label),
      'sharded',
      { ...this.hooks, onMoved: () => this.moved(key) },
      label,
      this.maxBatch,
    );
    // Redis drops sharded subscriptions of a slot that migrates away, and says so.
    link.conn.on('moved', () => this.moved(key));
    this.links.set(key, link);
    link.connect();
    return link;
  }

  /** Follow the slot table: open links to new masters, move channels whose slot moved, close idle links to former masters. */
  private reroute(): void {
    if (this.closed) return;
    const masters = new Set<string>();
    for (const owners of this.cluster.slots) if (owners?.[0] !== undefined) masters.add(owners[0]);
    for (const key of masters) this.linkTo(key);
    for (const [name, route] of this.routes) {
      const owner = this.owner(route.slot);
      if (!owner || owner === route.link) continue;
      route.link.interest.remove(name).catch(noop);
      route.link = owner;
      // Publications between the move and this subscribe were missed: not in sync until it is confirmed.
      // While the new link connects this fails fast, but the channel stays wanted and is restored with it.
      this.moves++;
      owner.interest
        .add(name)
        .catch(noop)
        .finally(() => {
          this.moves--;
          this.hooks.onChange();
        });
    }
    for (const [key, link] of this.links) {
      if (!masters.has(key) && link.interest.size === 0) {
        this.links.delete(key);
        void link.close();
      }
    }
    this.hooks.onChange();
  }

  /**
   * A subscription was refused or dropped because its slot moved: reload the
   * slot table (which reroutes), then start that link over, in case the
   * table came from a node that had not heard of the move yet. At most one
   * such round per link at a time, at most one per `MOVED_PAUSE_MS`.
   */
  private moved(key: string): void {
    if (this.closed || this.moving.has(key)) return;
    this.moving.add(key);
    this.cluster.refreshSlotsCache((err) => {
      if (err) this.hooks.onError(err, 'cluster slots refresh');
      const timer = setTimeout(() => {
        this.moving.delete(key);
        if (!this.closed) this.links.get(key)?.reconnect();
      }, MOVED_PAUSE_MS);
      timer.unref();
    });
  }
}
