/**
 * The parts of the Redis store on one command client, as the Redis broker
 * and RabbitMQ's Redis store keep them (same keys, same scripts): history
 * and numbering (`streams`), acks, presence, the registry by node id, and
 * the per-node bookkeeping that drops a node's presence and registry together.
 */
import type { Store } from '../broker.js';
import { composeStore } from '../store.js';
import { RedisAcks } from './acks.js';
import type { RedisKeys } from './keys.js';
import { RedisEvents } from './events.js';
import type { CommandClient } from './lua.js';
import { RedisOwners } from './owners.js';
import { RedisPresence } from './presence.js';
import { RedisRegistry } from './registry.js';
import { RedisStreams } from './stream.js';

export interface RedisRecords {
  /** History, acks, presence and the per-node drop: the broker's `Store`. */
  store: Store;
  /** Numbering and storing of publications (and history reads). */
  streams: RedisStreams;
  registry: RedisRegistry;
  /** The event log: standalone Redis only (its scripts touch keys of several slots). */
  events?: RedisEvents;
}

export function redisRecords(client: () => CommandClient, keys: RedisKeys, publishCommand: 'publish' | 'spublish'): RedisRecords {
  const streams = new RedisStreams(client, keys, publishCommand);
  // Classic PUBLISH: a standalone Redis, where a script may touch any key.
  const events = publishCommand === 'publish' ? new RedisEvents(client, keys) : undefined;
  const presence = new RedisPresence(client, keys, events);
  const registry = new RedisRegistry(client, keys);
  const owners = new RedisOwners(client, keys, [presence, registry]);
  return {
    store: composeStore([streams, new RedisAcks(client, keys), presence, owners]),
    streams,
    registry,
    ...(events ? { events } : {}),
  };
}
