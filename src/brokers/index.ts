/** Picks the broker implementation for a `--broker` value. */
import type { Broker, Route } from './broker.js';
import { AmqpBroker } from './amqp/amqp-broker.js';
import { isAmqpUrl } from './amqp/url.js';
import { MemoryBroker } from './memory/memory-broker.js';
import { NatsBroker } from './nats/nats-broker.js';
import { isNatsUrl } from './nats/url.js';
import { RedisBroker } from './redis/redis-broker.js';
import { isRedisUrl } from './redis/url.js';

export type { Broker } from './broker.js';

export interface BrokerDeps {
  /** Told of every fault a broker survives (connection errors, undecodable messages). */
  onError?: (err: Error, where: string) => void;
  /** The routes the node's routing strategy will use (a broker may set itself up for just those). */
  routes?: ReadonlyArray<Route['to']>;
}

export function createBroker(spec: string, deps: BrokerDeps = {}): Broker {
  if (spec === 'memory') return new MemoryBroker();
  if (isAmqpUrl(spec)) return new AmqpBroker(spec, deps.onError ? { onError: deps.onError } : {});
  if (isRedisUrl(spec)) return deps.onError ? new RedisBroker(spec, { onError: deps.onError }) : new RedisBroker(spec);
  if (isNatsUrl(spec)) return new NatsBroker(spec, { ...deps });
  throw new Error(`broker "${spec}" is not available: use memory, a redis:// or redis+cluster:// URL, a nats:// URL or amqp://…?store=redis://…`);
}
