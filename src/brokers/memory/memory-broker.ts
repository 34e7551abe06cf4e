/**
 * The in-process broker: history, presence and pub/sub in this process's
 * memory. A `MemoryBus` is the shared "server"; each node attaches its own
 * `MemoryBroker` to it, so several nodes in one process (tests) behave like
 * a cluster. `switchboard start` with no `--broker` uses one bus per node.
 *
 * Everything happens synchronously inside one call, so numbering, storing,
 * the registry read and the deliveries of a publish are one atomic step.
 */
import type { PublishResult, StreamPosition } from '../../protocol/index.js';
import type {
  Broker, BrokerHandlers, BrokerPublication, Idempotency,
  PresenceEntry, PresenceItem, PublishReceipt, Route,
} from '../broker.js';
import type { HistoryPage, HistoryPolicy, HistoryQuery } from '../history.js';
import { ALL_ROUTES, TO_SUBSCRIBERS } from '../broker.js';
import { ExpiringIndex } from './expiring.js';
import { MemoryStream } from './stream.js';

/** Streams that hold nothing are forgotten (and get a new epoch) after this long without use. */
const STREAM_IDLE_MS = 24 * 3600 * 1000;
/**
 * Streams only ever read (subscribed, never published to) go sooner: a
 * client subscribing to many names must not pin memory for a day. A reader
 * that saw nothing recovers under any epoch (see the gateway), so nothing
 * is lost when one is forgotten.
 */
const UNPUBLISHED_IDLE_MS = 10 * 60 * 1000;
const SWEEP_INTERVAL_MS = 60 * 1000;

export class MemoryBus {
  private readonly streams = new Map<string, MemoryStream>();
  /** Presence entries by channel and session. */
  private readonly presences = new ExpiringIndex<PresenceEntry>();
  /** The routing registry: node ids by channel and node id. */
  private readonly registry = new ExpiringIndex<string>();
  /** The result of each idempotent publish, by channel and key. */
  private readonly onces = new ExpiringIndex<PublishResult>();
  /** Acknowledged positions by channel and reader. */
  private readonly acks = new ExpiringIndex<StreamPosition>();
  private readonly subscribers = new Map<string, Set<MemoryBroker>>();
  /** Started brokers by node id, for control messages and routed publications. */
  private readonly nodes = new Map<string, MemoryBroker>();
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private attached = 0;

  constructor(private readonly now: () => number = Date.now) {}

  attach(nodeId: string, broker: MemoryBroker): void {
    this.nodes.set(nodeId, broker);
    if (this.attached++ === 0) {
      this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
      this.sweeper.unref();
    }
  }

  detach(nodeId: string, broker: MemoryBroker): void {
    if (this.nodes.get(nodeId) === broker) this.nodes.delete(nodeId);
    if (--this.attached === 0 && this.sweeper) clearInterval(this.sweeper);
  }

  sendControl(to: string | null, payload: string): void {
    if (to === null) for (const b of this.nodes.values()) b.control(payload);
    else this.nodes.get(to)?.control(payload);
  }

  subscribe(channel: string, broker: MemoryBroker): void {
    let set = this.subscribers.get(channel);
    if (!set) this.subscribers.set(channel, (set = new Set()));
    set.add(broker);
  }

  unsubscribe(channel: string, broker: MemoryBroker): void {
    const set = this.subscribers.get(channel);
    if (set?.delete(broker) && set.size === 0) this.subscribers.delete(channel);
  }

  publish(
    pub: Omit<BrokerPublication, 'offset' | 'epoch'>,
    history: HistoryPolicy | null,
    route: Route = TO_SUBSCRIBERS,
    once?: Idempotency,
  ): PublishReceipt {
    if (once) {
      const first = this.onces.get(pub.channel, once.key, this.now());
      if (first) return { ...first, duplicate: true };
      const result = this.publishNow(pub, history, route);
      this.onces.set(pub.channel, once.key, result, this.now() + once.windowMs);
      return result;
    }
    return this.publishNow(pub, history, route);
  }

  private publishNow(pub: Omit<BrokerPublication, 'offset' | 'epoch'>, history: HistoryPolicy | null, route: Route): PublishResult {
    let delivered: BrokerPublication = pub;
    let result: PublishResult = {};
    if (history && history.size > 0) {
      const stored = this.stream(pub.channel).append(strip(pub), history, this.now());
      delivered = { ...pub, offset: stored.offset, epoch: stored.epoch };
      result = { offset: stored.offset, epoch: stored.epoch };
    }
    for (const b of this.receivers(pub.channel, route)) b.deliver(delivered);
    return result;
  }

  /** The brokers `route` reaches, each once; ids of nodes not attached are skipped. */
  private receivers(channel: string, route: Route): Iterable<MemoryBroker> {
    switch (route.to) {
      case 'subscribers':
        return this.subscribers.get(channel) ?? [];
      case 'all':
        return [...this.nodes.values()];
      case 'nodes': {
        const ids = new Set(route.nodes);
        if (route.registered) for (const id of this.registry.live(channel, this.now())) ids.add(id);
        const out: MemoryBroker[] = [];
        for (const id of ids) {
          const b = this.nodes.get(id);
          if (b) out.push(b);
        }
        return out;
      }
      default:
        throw new Error(`unknown route ${JSON.stringify(route satisfies never)}`);
    }
  }

  history(channel: string, query: HistoryQuery): HistoryPage {
    return this.stream(channel).read(query, this.now());
  }

  saveAck(channel: string, reader: string, position: StreamPosition, ttlMs: number): void {
    const now = this.now();
    const kept = this.acks.get(channel, reader, now);
    const next = kept && kept.epoch === position.epoch && kept.offset > position.offset ? kept : { ...position };
    this.acks.set(channel, reader, next, now + ttlMs);
  }

  loadAck(channel: string, reader: string): StreamPosition | null {
    const kept = this.acks.get(channel, reader, this.now());
    return kept ? { ...kept } : null;
  }

  presenceAdd(items: PresenceItem[], ttlMs: number): void {
    const expiresAt = this.now() + ttlMs;
    for (const { channel, entry } of items) this.presences.set(channel, entry.session, entry, expiresAt);
  }

  presenceRemove(items: Array<{ channel: string; session: string }>): void {
    for (const { channel, session } of items) this.presences.delete(channel, session);
  }

  presence(channel: string): PresenceEntry[] {
    return this.presences.live(channel, this.now());
  }

  register(nodeId: string, channels: string[], ttlMs: number): void {
    const expiresAt = this.now() + ttlMs;
    for (const channel of channels) this.registry.set(channel, nodeId, nodeId, expiresAt);
  }

  unregister(nodeId: string, channels: string[]): void {
    for (const channel of channels) this.registry.delete(channel, nodeId);
  }

  registered(channel: string): string[] {
    return this.registry.live(channel, this.now());
  }

  private stream(channel: string): MemoryStream {
    let s = this.streams.get(channel);
    if (!s) this.streams.set(channel, (s = new MemoryStream(this.now())));
    return s;
  }

  private sweep(): void {
    const now = this.now();
    for (const [channel, s] of this.streams) {
      if (s.idle(now, s.top === 0 ? UNPUBLISHED_IDLE_MS : STREAM_IDLE_MS)) this.streams.delete(channel);
    }
    this.presences.sweep(now);
    this.registry.sweep(now);
    this.onces.sweep(now);
    this.acks.sweep(now);
  }
}

/** The publication without its transport-only fields, as stored in history. */
function strip(pub: Omit<BrokerPublication, 'offset' | 'epoch'>): Omit<BrokerPublication, 'offset' | 'epoch' | 'ts'> {
  const { ts: _ts, ...rest } = pub;
  return rest;
}

export class MemoryBroker implements Broker {
  readonly kind = 'memory';
  readonly routes = ALL_ROUTES;
  readonly ready = true;
  private handlers: BrokerHandlers | undefined;
  private nodeId: string | undefined;
  private readonly channels = new Set<string>();

  constructor(private readonly bus: MemoryBus = new MemoryBus()) {}

  async start(nodeId: string, handlers: BrokerHandlers): Promise<void> {
    if (this.nodeId !== undefined) throw new Error('broker already started');
    this.nodeId = nodeId;
    this.handlers = handlers;
    this.bus.attach(nodeId, this);
  }

  /** Idempotent: the bus counts attached brokers, so only a started broker detaches, once. */
  async close(): Promise<void> {
    if (this.nodeId === undefined) return;
    for (const c of this.channels) this.bus.unsubscribe(c, this);
    this.channels.clear();
    this.bus.detach(this.nodeId, this);
    this.nodeId = undefined;
    this.handlers = undefined;
  }

  /** Called by the bus for channels this broker subscribed to, and for publications routed to it. */
  deliver(pub: BrokerPublication): void {
    this.handlers?.onPublication(pub);
  }

  /** Called by the bus for control messages to this node or to all. */
  control(payload: string): void {
    this.handlers?.onControl(payload);
  }

  async subscribe(channel: string): Promise<void> {
    this.channels.add(channel);
    this.bus.subscribe(channel, this);
  }

  async unsubscribe(channel: string): Promise<void> {
    this.channels.delete(channel);
    this.bus.unsubscribe(channel, this);
  }

  async publish(
    pub: Omit<BrokerPublication, 'offset' | 'epoch'>,
    history: HistoryPolicy | null,
    route: Route = TO_SUBSCRIBERS,
    once?: Idempotency,
  ): Promise<PublishReceipt> {
    return this.bus.publish(pub, history, route, once);
  }

  async saveAck(channel: string, reader: string, position: StreamPosition, ttlMs: number): Promise<void> {
    this.bus.saveAck(channel, reader, position, ttlMs);
  }

  async loadAck(channel: string, reader: string): Promise<StreamPosition | null> {
    return this.bus.loadAck(channel, reader);
  }

  async history(channel: string, query: HistoryQuery, _policy: HistoryPolicy): Promise<HistoryPage> {
    return this.bus.history(channel, query);
  }

  async presenceAdd(items: PresenceItem[], ttlMs: number): Promise<void> {
    this.bus.presenceAdd(items, ttlMs);
  }

  async presenceRemove(items: Array<{ channel: string; session: string }>): Promise<void> {
    this.bus.presenceRemove(items);
  }

  async presence(channel: string): Promise<PresenceEntry[]> {
    return this.bus.presence(channel);
  }

  async register(channels: string[], ttlMs: number): Promise<void> {
    this.bus.register(this.started(), channels, ttlMs);
  }

  async unregister(channels: string[]): Promise<void> {
    this.bus.unregister(this.started(), channels);
  }

  async registered(channel: string): Promise<string[]> {
    return this.bus.registered(channel);
  }

  async sendControl(to: string | null, payload: string): Promise<void> {
    this.bus.sendControl(to, payload);
  }

  /** The node id; registry entries are per node, so they need a started broker. */
  private started(): string {
    if (this.nodeId === undefined) throw new Error('broker not started');
    return this.nodeId;
  }
}
