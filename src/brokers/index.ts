/** Picks the broker implementation for a `--broker` value. */
import type { Broker } from './broker.js';
import { MemoryBroker } from './memory/memory-broker.js';
import { RedisBroker } from './redis/redis-broker.js';
import { isRedisUrl } from './redis/url.js';

export type { Broker } from './broker.js';

export interface BrokerDeps {
  /** Told of every fault a broker survives (connection errors, undecodable messages). */
  onError?: (err: Error, where: string) => void;
}

export function createBroker(spec: string, deps: BrokerDeps = {}): Broker {
  if (spec === 'memory') return new MemoryBroker();
  if (isRedisUrl(spec)) return deps.onError ? new RedisBroker(spec, { onError: deps.onError }) : new RedisBroker(spec);
  throw new Error(`broker "${spec}" is not available in this version: use memory or a redis:// or redis+cluster:// URL`);
}
