/**
 * What the in-process broker keeps: each channel's history, acknowledged
 * positions, presence and the routing registry, in this process's memory.
 * One `MemoryStore` belongs to a `MemoryBus` and is shared by every broker
 * on it. The bus numbers and stores a publication through `append` and
 * reads the registry through `registeredNow`, synchronously, in the same
 * step as it delivers.
 */
import type { Publication, StreamPosition } from '../../protocol/index.js';
import type { PresenceEntry, PresenceItem, Store } from '../broker.js';
import type { NodeRegistry } from '../store.js';
import type { HistoryPage, HistoryPolicy, HistoryQuery } from '../history.js';
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

export class MemoryStore implements Store, NodeRegistry {
  private readonly streams = new Map<string, MemoryStream>();
  /** Presence entries by channel and session. */
  private readonly presences = new ExpiringIndex<PresenceEntry>();
  /** The routing registry: node ids by channel and node id. */
  private readonly registry = new ExpiringIndex<string>();
  /** Acknowledged positions by channel and reader. */
  private readonly acks = new ExpiringIndex<StreamPosition>();

  constructor(private readonly now: () => number) {}

  /** Number and store a publication (for the bus's publish). */
  append(pub: Omit<Publication, 'offset' | 'epoch'>, policy: HistoryPolicy): Publication {
    return this.stream(pub.channel).append(pub, policy, this.now());
  }

  /** The registered nodes of `channel`, synchronously (for the bus's publish). */
  registeredNow(channel: string): string[] {
    return this.registry.live(channel, this.now());
  }

  async history(channel: string, query: HistoryQuery, _policy?: HistoryPolicy): Promise<HistoryPage> {
    return this.stream(channel).read(query, this.now());
  }

  async saveAck(channel: string, reader: string, position: StreamPosition, ttlMs: number): Promise<void> {
    const now = this.now();
    const kept = this.acks.get(channel, reader, now);
    const next = kept && kept.epoch === position.epoch && kept.offset > position.offset ? kept : { ...position };
    this.acks.set(channel, reader, next, now + ttlMs);
  }

  async loadAck(channel: string, reader: string): Promise<StreamPosition | null> {
    const kept = this.acks.get(channel, reader, this.now());
    return kept ? { ...kept } : null;
  }

  async presenceAdd(items: PresenceItem[], ttlMs: number): Promise<void> {
    const expiresAt = this.now() + ttlMs;
    for (const { channel, entry } of items) this.presences.set(channel, entry.session, entry, expiresAt);
  }

  async presenceRemove(items: Array<{ channel: string; session: string }>): Promise<void> {
    for (const { channel, session } of items) this.presences.delete(channel, session);
  }

  async presence(channel: string): Promise<PresenceEntry[]> {
    return this.presences.live(channel, this.now());
  }

  async add(nodeId: string, channels: string[], ttlMs: number): Promise<void> {
    const expiresAt = this.now() + ttlMs;
    for (const channel of channels) this.registry.set(channel, nodeId, nodeId, expiresAt);
  }

  async remove(nodeId: string, channels: string[]): Promise<void> {
    for (const channel of channels) this.registry.delete(channel, nodeId);
  }

  async list(channel: string): Promise<string[]> {
    return this.registeredNow(channel);
  }

  /** Forget idle streams and expired entries. */
  sweep(): void {
    const now = this.now();
    for (const [channel, s] of this.streams) {
      if (s.idle(now, s.top === 0 ? UNPUBLISHED_IDLE_MS : STREAM_IDLE_MS)) this.streams.delete(channel);
    }
    this.presences.sweep(now);
    this.registry.sweep(now);
    this.acks.sweep(now);
  }

  private stream(channel: string): MemoryStream {
    let s = this.streams.get(channel);
    if (!s) this.streams.set(channel, (s = new MemoryStream(this.now())));
    return s;
  }
}
