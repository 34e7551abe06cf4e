/**
 * Picks the broker implementation for a `--broker` value. Each networked
 * broker's module, and so its client library (ioredis, amqplib, the NATS
 * packages), is loaded only when its URL scheme is asked for: a memory node
 * loads none of them. The `url.ts` modules that recognise the schemes import
 * no client library.
 */
import type { Broker, Route } from './broker.js';
import { isAmqpUrl } from './amqp/url.js';
import { MemoryBroker } from './memory/memory-broker.js';
import { isNatsUrl } from './nats/url.js';
import { isRedisUrl } from './redis/url.js';

export type { Broker } from './broker.js';

export interface BrokerDeps {
  /** Told of every fault a broker survives (connection errors, undecodable messages). */
  onError?: (err: Error, where: string) => void;
  /** The routes the node's routing strategy will use (a broker may set itself up for just those). */
  routes?: ReadonlyArray<Route['to']>;
}

export async function createBroker(spec: string, deps: BrokerDeps = {}): Promise<Broker> {
  if (spec === 'memory') return new MemoryBroker();
  if (isAmqpUrl(spec)) {
    const { AmqpBroker } = await import('./amqp/amqp-broker.js');
    return new AmqpBroker(spec, deps.onError ? { onError: deps.onError } : {});
  }
  if (isRedisUrl(spec)) {
    const { RedisBroker } = await import('./redis/redis-broker.js');
    return deps.onError ? new RedisBroker(spec, { onError: deps.onError }) : new RedisBroker(spec);
  }
  if (isNatsUrl(spec)) {
    const { NatsBroker } = await import('./nats/nats-broker.js');
    return new NatsBroker(spec, { ...deps });
  }
  throw new Error(`broker "${spec}" is not available: use memory, a redis:// or redis+cluster:// URL, a nats:// URL or amqp://…?store=redis://…`);
}
