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
} from '../broker.js';
import { MemoryStream } from './stream.js';

/** Streams that hold nothing are forgotten (and get a new epoch) after this long without use. */
const STREAM_IDLE_MS = 24 * 3600 * 1000;
const SWEEP_INTERVAL_MS = 60 * 1000;

export class MemoryBus {
  private readonly streams = new Map<string, MemoryStream>();
  private readonly presenceByChannel = new Map<string, Map<string, PresenceEntry>>();
  private readonly subscribers = new Map<string, Set<MemoryBroker>>();
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private attached = 0;

  constructor(private readonly now: () => number = Date.now) {}

  attach(): void {
    if (this.attached++ === 0) {
      this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
      this.sweeper.unref();
    }
  }

  detach(): void {
    if (--this.attached === 0 && this.sweeper) clearInterval(this.sweeper);
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

  presenceAdd(channel: string, entry: PresenceEntry): void {
    let m = this.presenceByChannel.get(channel);
    if (!m) this.presenceByChannel.set(channel, (m = new Map()));
    m.set(entry.session, entry);
  }

  presenceRemove(channel: string, session: string): void {
    const m = this.presenceByChannel.get(channel);
    if (m?.delete(session) && m.size === 0) this.presenceByChannel.delete(channel);
  }

  presence(channel: string): PresenceEntry[] {
    return [...(this.presenceByChannel.get(channel)?.values() ?? [])];
  }

  private stream(channel: string): MemoryStream {
    let s = this.streams.get(channel);
    if (!s) this.streams.set(channel, (s = new MemoryStream(this.now())));
    return s;
  }

  private sweep(): void {
    const now = this.now();
    for (const [channel, s] of this.streams) if (s.idle(now, STREAM_IDLE_MS)) this.streams.delete(channel);
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
  private started = false;
  private readonly channels = new Set<string>();

  constructor(private readonly bus: MemoryBus = new MemoryBus()) {}

  async start(handlers: BrokerHandlers): Promise<void> {
    this.handlers = handlers;
    if (!this.started) this.bus.attach();
    this.started = true;
  }

  /** Idempotent: the bus counts attached brokers, so only a started broker detaches, once. */
  async close(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    for (const c of this.channels) this.bus.unsubscribe(c, this);
    this.channels.clear();
    this.bus.detach();
    this.handlers = undefined;
  }

  /** Called by the bus for channels this broker subscribed to. */
  deliver(pub: BrokerPublication): void {
    this.handlers?.onPublication(pub);
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

  async presenceAdd(channel: string, entry: PresenceEntry): Promise<void> {
    this.bus.presenceAdd(channel, entry);
  }

  async presenceRemove(channel: string, session: string): Promise<void> {
    this.bus.presenceRemove(channel, session);
  }

  async presence(channel: string): Promise<PresenceEntry[]> {
    return this.bus.presence(channel);
  }
}
