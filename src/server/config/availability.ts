/**
 * What this build can run. A broker or routing outside these lists is
 * well-formed but not implemented yet, and loading fails with a line that
 * says so. Add to the lists as implementations land.
 */
import type { RoutingName } from '../options.js';
import { checkBroker, type BrokerKind } from './broker.js';
import { ConfigError } from './errors.js';
import { SETTINGS, type Origins, type SettingValues } from './settings.js';
import { shown } from './values.js';

/** Brokers this build can start. */
export const AVAILABLE_BROKERS: readonly BrokerKind[] = ['memory', 'redis', 'redis-cluster'];
/** Routing strategies this build can start. */
export const AVAILABLE_ROUTINGS: readonly RoutingName[] = ['interest'];

const BROKER_NAMES: Readonly<Record<BrokerKind, string>> = {
  memory: 'memory',
  redis: 'Redis',
  'redis-cluster': 'Redis Cluster',
  nats: 'NATS',
  amqp: 'RabbitMQ (AMQP)',
};

/** Throws `ConfigError` when the merged settings ask for something this build cannot run. */
export function checkAvailability(values: SettingValues, origins: Origins): void {
  const broker = values.broker ?? 'memory';
  const check = checkBroker(broker);
  const kind: BrokerKind = check.ok ? check.kind : 'memory';
  if (!AVAILABLE_BROKERS.includes(kind)) {
    const what = `the ${BROKER_NAMES[kind]} broker (${shown(SETTINGS.broker, broker)})`;
    throw new ConfigError(
      `${origins.broker ?? '--broker'}: ${what} is not available in this version yet: use memory (one node) or Redis (redis://, redis+cluster://)`,
    );
  }
  const routing = values.routing ?? 'interest';
  if (!AVAILABLE_ROUTINGS.includes(routing)) {
    const use = AVAILABLE_ROUTINGS.join(' or ');
    throw new ConfigError(`${origins.routing ?? '--routing'}: routing "${routing}" is not available in this version yet: use ${use} (the default)`);
  }
  const workers = values.workers ?? 1;
  if (workers > 1 && kind === 'memory') {
    throw new ConfigError(
      `${origins.workers ?? '--workers'} is ${workers}, but the memory broker lives in one process, so workers need a shared broker ` +
        '(each would be a cluster of its own): use 1 worker with the memory broker',
    );
  }
  if (workers > 1) {
    throw new ConfigError(
      `${origins.workers ?? '--workers'} is ${workers}: several workers per machine are not available in this version yet: ` +
        'use 1, and switchboard cluster --nodes N (or one process per core behind a load balancer) meanwhile',
    );
  }
}
