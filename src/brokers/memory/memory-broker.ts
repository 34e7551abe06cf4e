/**
 * The in-process broker: history, presence and pub/sub in this process's
 * memory. A `MemoryBus` is the shared "server"; each node attaches its own
 * `MemoryBroker` to it, so several nodes in one process (tests) behave like
 * a cluster. `switchboard start` with no `--broker` uses one bus per node.
 */
import type { PublishResult } from '../../protocol/index.js';
import type {
  Broker,
  BrokerHandlers,
  BrokerPublication,
  HistoryPage,
  HistoryPolicy,
  HistoryQuery,
  PresenceEntry,
  PresenceItem,
} from '../broker.js';
import { MemoryStream } from './stream.js';

/** Streams that hold nothing are forgotten (and get a new epoch) after this long without use. */
const STREAM_IDLE_MS = 24 * 3600 * 1000;
const SWEEP_INTERVAL_MS = 60 * 1000;

export class MemoryBus {
  private readonly streams = new Map<string, MemoryStream>();
  private readonly presenceByChannel = new Map<string, Map<string, { entry: PresenceEntry; expiresAt: number }>>();
  private readonly subscribers = new Map<string, Set<MemoryBroker>>();
  /** Started brokers by node id, for control messages. */
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

  publish(pub: Omit<BrokerPublication, 'offset' | 'epoch'>, history: HistoryPolicy | null): PublishResult {
    let delivered: BrokerPublication = pub;
    let result: PublishResult = {};
    if (history && history.size > 0) {
      const stored = this.stream(pub.channel).append(strip(pub), history, this.now());
      delivered = { ...pub, offset: stored.offset, epoch: stored.epoch };
      result = { offset: stored.offset, epoch: stored.epoch };
    }
    const set = this.subscribers.get(pub.channel);
    if (set) for (const b of set) b.deliver(delivered);
    return result;
  }

  history(channel: string, query: HistoryQuery): HistoryPage {
    return this.stream(channel).read(query, this.now());
  }

  presenceAdd(items: PresenceItem[], ttlMs: number): void {
    const expiresAt = this.now() + ttlMs;
    for (const { channel, entry } of items) {
      let m = this.presenceByChannel.get(channel);
      if (!m) this.presenceByChannel.set(channel, (m = new Map()));
      m.set(entry.session, { entry, expiresAt });
    }
  }

  presenceRemove(items: Array<{ channel: string; session: string }>): void {
    for (const { channel, session } of items) {
      const m = this.presenceByChannel.get(channel);
      if (m?.delete(session) && m.size === 0) this.presenceByChannel.delete(channel);
    }
  }

  presence(channel: string): PresenceEntry[] {
    const m = this.presenceByChannel.get(channel);
    if (!m) return [];
    const now = this.now();
    const live: PresenceEntry[] = [];
    for (const [session, { entry, expiresAt }] of m) {
      if (expiresAt > now) live.push(entry);
      else m.delete(session);
    }
    if (m.size === 0) this.presenceByChannel.delete(channel);
    return live;
  }

  private stream(channel: string): MemoryStream {
    let s = this.streams.get(channel);
    if (!s) this.streams.set(channel, (s = new MemoryStream(this.now())));
    return s;
  }

  private sweep(): void {
    const now = this.now();
    for (const [channel, s] of this.streams) if (s.idle(now, STREAM_IDLE_MS)) this.streams.delete(channel);
    for (const channel of this.presenceByChannel.keys()) this.presence(channel);
  }
}

/** The publication without its transport-only fields, as stored in history. */
function strip(pub: Omit<BrokerPublication, 'offset' | 'epoch'>): Omit<BrokerPublication, 'offset' | 'epoch' | 'ts'> {
  const { ts: _ts, ...rest } = pub;
  return rest;
}

export class MemoryBroker implements Broker {
  readonly kind = 'memory';
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

  /** Called by the bus for channels this broker subscribed to. */
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

  async publish(pub: Omit<BrokerPublication, 'offset' | 'epoch'>, history: HistoryPolicy | null): Promise<PublishResult> {
    return this.bus.publish(pub, history);
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

  async sendControl(to: string | null, payload: string): Promise<void> {
    this.bus.sendControl(to, payload);
  }
}
