/**
 * The seam between a node's core and whatever carries messages between
 * nodes. The core (sessions, channels, routing) talks only to these
 * interfaces; each broker lives in its own folder and nothing outside that
 * folder imports its client library.
 *
 * A `Broker` is two things: a `Transport` (what carries messages) and a
 * `Store` (history, acknowledged positions, presence), plus a `Registry`
 * where the backend can keep one. Each broker exposes its store objects
 * rather than forwarding each store method.
 */
import type { Publication, PublishResult, StreamPosition } from '../protocol/index.js';
import type { EventLog } from './events.js';
import type { HistoryPage, HistoryPolicy, HistoryQuery, Resumption } from './history.js';

/** A publication as it travels between nodes: the wire publication plus when it was accepted. */
export interface BrokerPublication extends Publication {
  /** Milliseconds since the Unix epoch at which the publish was accepted (for delivery latency). */
  ts: number;
}

/**
 * Publish at most once per key: a publish that names a `key` already used on
 * the same channel within `windowMs` publishes nothing and returns the first
 * publish's result. The check and the publish are one atomic step where the
 * broker allows it (memory, Redis, RabbitMQ's Redis store).
 */
export interface Idempotency {
  key: string;
  windowMs: number;
}

/** What `publish` returns: the position, and whether an earlier publish with the same idempotency key made it. */
export interface PublishReceipt extends PublishResult {
  duplicate?: boolean;
}

export interface PresenceEntry {
  user: string;
  session: string;
  node: string;
}

/** A presence entry and the channel it is on. */
export interface PresenceItem {
  channel: string;
  entry: PresenceEntry;
}

/**
 * Where a publication goes; the node's routing strategy picks it.
 *
 * - `subscribers`: to every node that subscribed to the channel (`subscribe`): interest routing.
 * - `all`: to every started node, subscribed or not: broadcast routing.
 * - `nodes`: to the inbox of each node in `nodes` and, when `registered`, of
 *   each node registered for the channel (`register`), each node once. The
 *   registry is read atomically with storing the publication: a node that
 *   registered before it was stored receives it, and a node that registers
 *   later finds it in history. Registry and hash-ring routing.
 *
 * Whatever the route, the publications of one channel reach each node in
 * offset order. Publications without history have no offset: they keep the
 * order of each publishing node, not an order across nodes.
 */
export type Route =
  | { readonly to: 'subscribers' }
  | { readonly to: 'all' }
  | { readonly to: 'nodes'; readonly nodes: readonly string[]; readonly registered: boolean };

/** Interest routing, the default route of `publish`. */
export const TO_SUBSCRIBERS: Route = { to: 'subscribers' };

/** Every route: what a broker that can carry them all declares. */
export const ALL_ROUTES: ReadonlyArray<Route['to']> = ['subscribers', 'all', 'nodes'];

export interface BrokerHandlers {
  /**
   * A publication on a channel this node subscribed to, or sent to every
   * node or to this node's inbox (see `Route`). Called in offset order per channel.
   */
  onPublication(pub: BrokerPublication): void;
  /**
   * The broker became reachable or unreachable. After a `false`, a `true`
   * means every subscription has been restored; publications made while it
   * was down may have been missed and must be caught up from history.
   */
  onReadyChange(ready: boolean): void;
  /** A node-to-node message sent to this node or to every node (see `sendControl`). */
  onControl(payload: string): void;
}

/**
 * What carries messages between nodes: connecting, subscriptions, publish
 * and control messages. `publish` stays here (not in `Store`) because it
 * numbers and stores a publication in the same step as it sends it.
 */
export interface Transport {
  /** A short name for logs and metrics: `memory`, `redis`, … */
  readonly kind: string;
  /**
   * The routes this broker can carry with the guarantees above. A node
   * refuses to start with a routing strategy whose route is missing here.
   */
  readonly routes: ReadonlyArray<Route['to']>;
  /** Whether the broker is reachable now. */
  readonly ready: boolean;
  /**
   * Connect, and receive control messages for `nodeId` and for all nodes,
   * and publications routed to all nodes or to this node's inbox.
   */
  start(nodeId: string, handlers: BrokerHandlers): Promise<void>;
  close(): Promise<void>;

  /** Start receiving publications of `channel` (this node has local subscribers). */
  subscribe(channel: string): Promise<void>;
  /** Stop receiving publications of `channel` (its last local subscriber left). */
  unsubscribe(channel: string): Promise<void>;

  /**
   * Optional: run `read` (a store read of `channel`'s history) in the round
   * trip of this node's subscription of `channel` (`subscribe`, called
   * already, settling as `subscribed`) instead of after it. The answer must
   * be as good as reading after `subscribed`: every publication the read
   * did not see reaches `onPublication`. A broker that cannot prove that
   * for its first read reads again once `subscribed` settled. Without this
   * method the core waits for `subscribed`, then reads: two round trips.
   */
  readSubscribing?<T>(channel: string, subscribed: Promise<void>, read: () => Promise<T>): Promise<T>;

  /**
   * Publish along `route` (default: to the channel's subscribers), assigning
   * the offset and epoch atomically with storing it in history when
   * `history` is given. Resolves once the broker has accepted it; rejects
   * (without retrying) when it cannot. With `once`, see `Idempotency`.
   */
  publish(
    pub: Omit<BrokerPublication, 'offset' | 'epoch'>,
    history: HistoryPolicy | null,
    route?: Route,
    once?: Idempotency,
  ): Promise<PublishReceipt>;

  /**
   * Send a control message to one node, or to every node (`to: null`, the
   * sender included). One sender's messages arrive in the order sent; there
   * is no order across senders.
   */
  sendControl(to: string | null, payload: string): Promise<void>;
}

/**
 * What a broker keeps for the cluster besides carrying messages: history,
 * acknowledged positions and presence. A new method here is implemented by
 * each backend's store object and listed in `STORE_METHODS`; the brokers
 * and the IPC wire carry it without change.
 */
export interface Store {
  /** A page of `channel`'s history (stored by `publish`). */
  history(channel: string, query: HistoryQuery, policy: HistoryPolicy): Promise<HistoryPage>;

  /**
   * Keep `position` as what `reader` (a user's device, or '' for the user as
   * a whole) has acknowledged on `channel`, for `ttlMs` after the last save:
   * offline delivery replays from it. Within one epoch the position only
   * moves forward; a position in another epoch replaces it.
   */
  saveAck(channel: string, reader: string, position: StreamPosition, ttlMs: number): Promise<void>;
  /** The position `reader` acknowledged on `channel`, or null when none is kept. */
  loadAck(channel: string, reader: string): Promise<StreamPosition | null>;
  /**
   * Where `reader` resumes `channel` (offline delivery) and what it missed:
   * its acknowledged position (`loadAck`) and the history after it (after
   * the start when none is kept; at most `policy.size`), read in one step
   * where the store can (Redis: one script), so that a connect does not
   * wait for the position before it reads.
   */
  resume(channel: string, reader: string, policy: HistoryPolicy): Promise<Resumption>;

  /**
   * Record presence entries. An entry lives until it is removed or its
   * node's entries are dropped (`dropNode`): nothing expires on a timer and
   * nothing is refreshed, so an idle node costs the store nothing.
   */
  presenceAdd(items: PresenceItem[]): Promise<void>;
  /** Remove presence entries (each names its node, whose entries the store can drop together). */
  presenceRemove(items: PresenceItem[]): Promise<void>;
  /**
   * Every entry of `channel`, those of a node that died and was not dropped
   * yet included: the reader keeps the entries of the nodes it knows alive.
   */
  presence(channel: string): Promise<PresenceEntry[]>;

  /**
   * Drop every entry `node` holds here, presence and registry: a node that
   * died or left, or this node starting under an id it had before.
   * Idempotent; entries the node adds afterwards stay.
   */
  dropNode(node: string): Promise<void>;
  /** The nodes holding entries here, so that entries of nodes that died unseen can be dropped. */
  nodesWithEntries(): Promise<string[]>;
}

/**
 * The routing registry, which a broker has only if it can read it in the
 * same step as storing a publication (a `nodes` route with `registered`).
 * Entries are this node's: the broker knows its node id once started.
 */
export interface Registry {
  /**
   * Register this node for `channels` (registry routing: a `nodes` route with
   * `registered` reaches it). An entry lives until unregistered or until the
   * node's entries are dropped (`Store.dropNode`).
   */
  register(channels: string[]): Promise<void>;
  /** Remove this node's entries for `channels`. */
  unregister(channels: string[]): Promise<void>;
  /** The nodes with an entry for `channel`, each once, those of a dead node not dropped yet included. */
  registered(channel: string): Promise<string[]>;
}

/**
 * A broker: a transport, the store beside it and, when it can carry a
 * `nodes` route with `registered`, the registry. A broker without a
 * registry (NATS) has `registry` undefined, and the node refuses at start
 * a routing strategy that needs it (see `routes`).
 */
export interface Broker extends Transport {
  readonly store: Store;
  readonly registry?: Registry;
  /**
   * Whether a store read issued after `registry.register` was called
   * (before it settled) runs after the registration: registry and store
   * share one connection that keeps the order of calls (Redis; RabbitMQ's
   * Redis store). The core then sends a subscriber's history read with its
   * registration, in one round trip, instead of after it.
   */
  readonly registryOrdered?: boolean;
  /**
   * The event log (`events.ts`), where the store can log presence
   * transitions atomically with them; a node refuses `--webhook` at start
   * on a broker without one.
   */
  readonly events?: EventLog;
}

/** Every `Store` method, for carrying store calls generically (IPC). The type check keeps the list complete. */
export const STORE_METHODS = ['history', 'saveAck', 'loadAck', 'resume', 'presenceAdd', 'presenceRemove', 'presence', 'dropNode', 'nodesWithEntries'] as const satisfies ReadonlyArray<keyof Store>;

/** Every `Registry` method, as `STORE_METHODS`. */
export const REGISTRY_METHODS = ['register', 'unregister', 'registered'] as const satisfies ReadonlyArray<keyof Registry>;

/** Compiles only when a list names every method of its interface. */
type Complete<List extends ReadonlyArray<string>, Of> = Exclude<keyof Of, List[number]> extends never ? true : never;
const _complete: [Complete<typeof STORE_METHODS, Store>, Complete<typeof REGISTRY_METHODS, Registry>] = [true, true];
void _complete;
