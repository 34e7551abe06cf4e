/**
 * What the in-process broker keeps: each channel's history, acknowledged
 * positions, presence and the routing registry, in this process's memory.
 * One `MemoryStore` belongs to a `MemoryBus` and is shared by every broker
 * on it. The bus numbers and stores a publication through `append` and
 * reads the registry through `registeredNow`, synchronously, in the same
 * step as it delivers.
 */
import { personalChannelUser, type Publication, type StreamPosition } from '../../protocol/index.js';
import type { PresenceEntry, PresenceItem, Store } from '../broker.js';
import type { NodeRegistry } from '../store.js';
import { resumeInTwoReads, type HistoryPage, type HistoryPolicy, type HistoryQuery, type Resumption } from '../history.js';
import { MemoryEvents } from './events.js';
import { ExpiringIndex } from './expiring.js';
import { MemoryStream } from './stream.js';

/** Streams that hold nothing are forgotten (and get a new epoch) after this long without use. */
const STREAM_IDLE_MS = 24 * 3600 * 1000;

export class MemoryStore implements Store, NodeRegistry {
  private readonly streams = new Map<string, MemoryStream>();
  /** Presence entries by channel and session; they live until removed or their node is dropped. */
  private readonly presences = new Map<string, Map<string, PresenceEntry>>();
  /** The routing registry: the nodes registered for each channel. */
  private readonly registry = new Map<string, Set<string>>();
  /** Acknowledged positions by channel and reader. */
  private readonly acks = new ExpiringIndex<StreamPosition>();
  /** The event log: told when a channel's entries go from none to some and back. */
  readonly events: MemoryEvents;

  constructor(private readonly now: () => number) {
    this.events = new MemoryEvents(now);
  }

  /** Number and store a publication (for the bus's publish). */
  append(pub: Omit<Publication, 'offset' | 'epoch'>, policy: HistoryPolicy): Publication {
    return this.stream(pub.channel).append(pub, policy, this.now());
  }

  /** The registered nodes of `channel`, synchronously (for the bus's publish). */
  registeredNow(channel: string): string[] {
    const nodes = this.registry.get(channel);
    return nodes ? [...nodes] : [];
  }

  /** A channel never published to has no numbering: an empty page without epoch, and nothing is kept for the read. */
  async history(channel: string, query: HistoryQuery, _policy?: HistoryPolicy): Promise<HistoryPage> {
    const stream = this.streams.get(channel);
    return stream ? stream.read(query, this.now()) : { offset: 0, epoch: '', earliest: 1, messages: [] };
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

  resume(channel: string, reader: string, policy: HistoryPolicy): Promise<Resumption> {
    return resumeInTwoReads(this, channel, reader, policy);
  }

  async presenceAdd(items: PresenceItem[]): Promise<void> {
    for (const { channel, entry } of items) {
      let entries = this.presences.get(channel);
      if (!entries) this.presences.set(channel, (entries = new Map()));
      const first = entries.size === 0;
      const added = !entries.has(entry.session);
      entries.set(entry.session, { user: entry.user, session: entry.session, node: entry.node });
      if (first) this.events.transition('online', channel, entry.node, entry.session);
      if (added) this.events.member('join', channel, entry);
    }
  }

  async presenceRemove(items: PresenceItem[]): Promise<void> {
    for (const { channel, entry } of items) {
      const entries = this.presences.get(channel);
      const kept = entries?.get(entry.session);
      if (!entries || !kept) continue;
      entries.delete(entry.session);
      this.events.member('leave', channel, kept);
      if (entries.size === 0) {
        this.presences.delete(channel);
        this.events.transition('offline', channel, entry.node, entry.session);
      }
    }
  }

  async presence(channel: string): Promise<PresenceEntry[]> {
    const entries = this.presences.get(channel);
    return entries ? [...entries.values()].map((e) => ({ ...e })) : [];
  }

  /**
   * Walks every entry: dropping a node is rare (it died or left), an index per node would cost memory on every entry.
   * Personal channels go last, so that a user's `leave` events come before its `offline`.
   */
  async dropNode(node: string): Promise<void> {
    const channels = [...this.presences.keys()];
    const personal = (c: string): boolean => personalChannelUser(c) !== undefined;
    for (const channel of [...channels.filter((c) => !personal(c)), ...channels.filter(personal)]) {
      const entries = this.presences.get(channel)!;
      let dropped = false;
      for (const [session, entry] of entries) {
        if (entry.node !== node) continue;
        entries.delete(session);
        dropped = true;
        this.events.member('leave', channel, entry);
      }
      if (entries.size > 0) continue;
      this.presences.delete(channel);
      if (dropped) this.events.transition('offline', channel, node);
    }
    for (const [channel, nodes] of this.registry) {
      if (nodes.delete(node) && nodes.size === 0) this.registry.delete(channel);
    }
  }

  async nodesWithEntries(): Promise<string[]> {
    const nodes = new Set<string>();
    for (const entries of this.presences.values()) for (const entry of entries.values()) nodes.add(entry.node);
    for (const registered of this.registry.values()) for (const node of registered) nodes.add(node);
    return [...nodes];
  }

  async add(nodeId: string, channels: string[]): Promise<void> {
    for (const channel of channels) {
      let nodes = this.registry.get(channel);
      if (!nodes) this.registry.set(channel, (nodes = new Set()));
      nodes.add(nodeId);
    }
  }

  async remove(nodeId: string, channels: string[]): Promise<void> {
    for (const channel of channels) {
      const nodes = this.registry.get(channel);
      if (nodes?.delete(nodeId) && nodes.size === 0) this.registry.delete(channel);
    }
  }

  async list(channel: string): Promise<string[]> {
    return this.registeredNow(channel);
  }

  /** Forget idle streams and expired acknowledged positions. */
  sweep(): void {
    const now = this.now();
    for (const [channel, s] of this.streams) {
      if (s.idle(now, STREAM_IDLE_MS)) this.streams.delete(channel);
    }
    this.acks.sweep(now);
  }

  private stream(channel: string): MemoryStream {
    let s = this.streams.get(channel);
    if (!s) this.streams.set(channel, (s = new MemoryStream(this.now())));
    return s;
  }
}
