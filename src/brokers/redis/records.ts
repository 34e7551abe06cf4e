/**
 * The store of the Redis broker and of RabbitMQ's Redis store: history,
 * acknowledged positions, presence and the registry, on one command client
 * (same keys, same scripts for both). The numbering and storing of a
 * publication are in `streams`, which the broker's publish uses.
 */
import type { StreamPosition } from '../../protocol/index.js';
import type { PresenceEntry, PresenceItem, Store } from '../broker.js';
import type { HistoryPage, HistoryPolicy, HistoryQuery } from '../history.js';
import { RedisAcks } from './acks.js';
import type { RedisKeys } from './keys.js';
import type { CommandClient } from './lua.js';
import { RedisPresence } from './presence.js';
import { RedisRegistry } from './registry.js';
import { RedisStreams } from './stream.js';

export class RedisRecords implements Store {
  readonly streams: RedisStreams;
  readonly registry: RedisRegistry;
  private readonly presences: RedisPresence;
  private readonly acks: RedisAcks;

  constructor(client: () => CommandClient, keys: RedisKeys, publishCommand: 'publish' | 'spublish') {
    this.streams = new RedisStreams(client, keys, publishCommand);
    this.registry = new RedisRegistry(client, keys);
    this.presences = new RedisPresence(client, keys);
    this.acks = new RedisAcks(client, keys);
  }

  history(channel: string, query: HistoryQuery, policy: HistoryPolicy): Promise<HistoryPage> {
    return this.streams.read(channel, query, policy);
  }

  saveAck(channel: string, reader: string, position: StreamPosition, ttlMs: number): Promise<void> {
    return this.acks.save(channel, reader, position, ttlMs);
  }

  loadAck(channel: string, reader: string): Promise<StreamPosition | null> {
    return this.acks.load(channel, reader);
  }

  presenceAdd(items: PresenceItem[], ttlMs: number): Promise<void> {
    return this.presences.add(items, ttlMs);
  }

  presenceRemove(items: Array<{ channel: string; session: string }>): Promise<void> {
    return this.presences.remove(items);
  }

  presence(channel: string): Promise<PresenceEntry[]> {
    return this.presences.list(channel);
  }
}
