/**
 * The in-process broker: pub/sub in this process's memory, beside the
 * store (`store.ts`: history, acks, presence, registry). A `MemoryBus` is
 * the shared "server"; each node attaches its own
 * `MemoryBroker` to it, so several nodes in one process (tests) behave like
 * a cluster. `switchboard start` with no `--broker` uses one bus per node.
 *
 * Everything happens synchronously inside one call, so numbering, storing,
 * the registry read and the deliveries of a publish are one atomic step.
 */
import type { PublishResult } from '../../protocol/index.js';
import type {
  Broker, BrokerHandlers, BrokerPublication, Idempotency,
  PublishReceipt, Registry, Route, Store,
} from '../broker.js';
import type { EventLog } from '../events.js';
import type { HistoryPolicy } from '../history.js';
import { ALL_ROUTES, TO_SUBSCRIBERS } from '../broker.js';
import { bindRegistry } from '../store.js';
import { ExpiringIndex } from './expiring.js';
import { MemoryStore } from './store.js';

const SWEEP_INTERVAL_MS = 60 * 1000;

export class MemoryBus {
  /** History, acknowledged positions, presence and the registry, shared by every broker on the bus. */
  readonly store: MemoryStore;
  /** The result of each idempotent publish, by channel and key. */
  private readonly onces = new ExpiringIndex<PublishResult>();
  private readonly subscribers = new Map<string, Set<MemoryBroker>>();
  /** Started brokers by node id, for control messages and routed publications. */
  private readonly nodes = new Map<string, MemoryBroker>();
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private attached = 0;

  constructor(private readonly now: () => number = Date.now) {
    this.store = new MemoryStore(now);
  }

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
      const stored = this.store.append(strip(pub), history);
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
        if (route.registered) for (const id of this.store.registeredNow(channel)) ids.add(id);
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

  private sweep(): void {
    this.store.sweep();
    this.onces.sweep(this.now());
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
  /** The bus's store: every broker on one bus shares it. */
  readonly store: Store;
  /** The bus's event log, shared likewise. */
  readonly events: EventLog;
  /** The bus's registry, as this node's. */
  readonly registry: Registry;
  private handlers: BrokerHandlers | undefined;
  private nodeId: string | undefined;
  private readonly channels = new Set<string>();

  constructor(private readonly bus: MemoryBus = new MemoryBus()) {
    this.store = bus.store;
    this.events = bus.store.events;
    this.registry = bindRegistry(bus.store, () => this.started());
  }

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

  async sendControl(to: string | null, payload: string): Promise<void> {
    this.bus.sendControl(to, payload);
  }

  /** The node id; registry entries are per node, so they need a started broker. */
  private started(): string {
    if (this.nodeId === undefined) throw new Error('broker not started');
    return this.nodeId;
  }
}
