/** Picks the broker implementation for a `--broker` value. */
import type { Broker } from './broker.js';
import { MemoryBroker } from './memory/memory-broker.js';

export type { Broker } from './broker.js';

export function createBroker(spec: string): Broker {
  if (spec === 'memory') return new MemoryBroker();
  throw new Error(`broker "${spec}" is not available in this version: use "memory"`);
}
