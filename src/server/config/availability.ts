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
export const AVAILABLE_BROKERS: readonly BrokerKind[] = ['memory', 'redis', 'redis-cluster', 'nats', 'amqp'];

/**
 * Routings a broker cannot carry with the guarantees (see `Broker.routes`):
 * NATS cannot read a registry atomically with storing a message, so the
 * registry and hash-ring routings (which send to node inboxes) are refused.
 */
const REFUSED_ROUTINGS: Partial<Record<BrokerKind, { routings: readonly RoutingName[]; why: string }>> = {
  nats: {
    routings: ['registry', 'hashring'],
    why: 'NATS cannot read a registry in the same step as storing a message, so a message could miss a node that just subscribed: use interest or broadcast with NATS (NATS routes by subject interest itself)',
  },
};
/** Routing strategies this build can start. */
export const AVAILABLE_ROUTINGS: readonly RoutingName[] = ['interest', 'broadcast', 'registry', 'hashring'];

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
  const refused = REFUSED_ROUTINGS[kind];
  if (refused?.routings.includes(routing)) {
    throw new ConfigError(`${origins.routing ?? '--routing'}: routing ${routing} does not work over the ${BROKER_NAMES[kind]} broker: ${refused.why}`);
  }
  if (kind === 'amqp' && check.ok) checkAmqpStore(broker, origins.broker ?? '--broker');
  if (!AVAILABLE_ROUTINGS.includes(routing)) {
    const use = AVAILABLE_ROUTINGS.join(' or ');
    throw new ConfigError(`${origins.routing ?? '--routing'}: routing "${routing}" is not available in this version yet: use ${use} (the default)`);
  }
  if (values.hashringRedirect === true && routing !== 'hashring') {
    throw new ConfigError(
      `${origins.hashringRedirect ?? '--hashring-redirect'} only applies to --routing hashring (the routing is ${routing})`,
    );
  }
  checkWebhook(values, origins, kind, check.ok ? broker : undefined);
  checkHooks(values, origins);
  const workers = values.workers ?? 1;
  if (workers > 1 && values.hashringRedirect === true) {
    throw new ConfigError(
      `${origins.hashringRedirect ?? '--hashring-redirect'} needs every node at a URL of its own, but the ${workers} workers ` +
        `(${origins.workers ?? '--workers'}) share one port: a client sent to its owner could land on any worker again. ` +
        'Use hash-ring routing without redirects, or one process per port (switchboard cluster --nodes N)',
    );
  }
}

/** The RabbitMQ broker keeps history, presence and the registry in Redis: its URL must name one (`?store=redis://…`). */
function checkAmqpStore(value: string, origin: string): void {
  // Not URLSearchParams: it would read the `+` of an unencoded redis+cluster:// as a space.
  const raw = /[?&]store=([^&#]*)/.exec(value)?.[1];
  let store: string | null = null;
  try {
    store = raw === undefined ? null : decodeURIComponent(raw);
  } catch {
    store = raw ?? null;
  }
  const hint = 'add ?store=redis://host:6379 (or redis+cluster://…) to the amqp:// URL';
  if (store === null || store === '') {
    throw new ConfigError(`${origin}: the RabbitMQ broker keeps history, presence and its registry in Redis: ${hint}`);
  }
  const kind = checkBroker(store);
  if (!kind.ok || (kind.kind !== 'redis' && kind.kind !== 'redis-cluster')) {
    throw new ConfigError(`${origin}: the store of the RabbitMQ broker must be a redis:// or redis+cluster:// URL: ${hint}`);
  }
}

/** The settings of hook URLs; each hook is signed with the same key. */
const HOOK_URLS = ['rpcHook', 'connectHook', 'refreshHook', 'subscribeHook', 'publishHook'] as const;

/**
 * A hook is always signed: a hook URL (`--rpc-hook`, `--connect-hook`,
 * `--refresh-hook`, `--subscribe-hook`, `--publish-hook`) needs
 * `--hook-secret`, or the webhook's `--webhook-secret` (which itself comes
 * with `--webhook`); a hook secret without a hook is a mistake, and so is a
 * refresh hook without the connect hook whose sessions it refreshes.
 */
function checkHooks(values: SettingValues, origins: Origins): void {
  if (values.refreshHook !== undefined && values.connectHook === undefined) {
    throw new ConfigError(`${origins.refreshHook ?? '--refresh-hook'} is given without --connect-hook: it refreshes the sessions that hook accepts`);
  }
  const hook = HOOK_URLS.find((key) => values[key] !== undefined);
  if (hook === undefined) {
    if (values.hookSecret !== undefined) throw new ConfigError(`${origins.hookSecret ?? '--hook-secret'} is given without a hook URL (--rpc-hook, --connect-hook, --subscribe-hook, --publish-hook)`);
    return;
  }
  if (values.hookSecret === undefined && values.webhookSecret === undefined) {
    throw new ConfigError(
      `${origins[hook] ?? `--${SETTINGS[hook].flag}`} needs --hook-secret (SWITCHBOARD_HOOK_SECRET), the key that signs each request (or --webhook with its --webhook-secret)`,
    );
  }
}

/**
 * `--webhook` needs its secret, and a broker whose store can log events
 * atomically with presence (`Broker.events`): memory, a standalone Redis,
 * RabbitMQ with a standalone Redis store. One process per node: workers
 * reach the store through the primary, which keeps no event log.
 */
function checkWebhook(values: SettingValues, origins: Origins, kind: BrokerKind, broker: string | undefined): void {
  const origin = origins.webhook ?? '--webhook';
  if (values.webhook === undefined) {
    if (values.webhookSecret !== undefined) throw new ConfigError(`${origins.webhookSecret ?? '--webhook-secret'} is given without --webhook`);
    return;
  }
  if (values.webhookSecret === undefined) {
    throw new ConfigError(`${origin} needs --webhook-secret (SWITCHBOARD_WEBHOOK_SECRET), the key that signs each request`);
  }
  const cluster = kind === 'redis-cluster' || (kind === 'amqp' && broker !== undefined && /[?&]store=rediss?(%2B|\+)cluster/i.test(broker));
  if (kind === 'nats' || cluster) {
    const what = cluster ? 'over a Redis Cluster' : `over the ${BROKER_NAMES[kind]} broker`;
    throw new ConfigError(
      `${origin}: events are not available ${what} in this version (the store must log them in one step with presence): use memory, a standalone redis:// or amqp://…?store=redis://`,
    );
  }
  if ((values.workers ?? 1) > 1) {
    throw new ConfigError(`${origin}: events are not available with ${origins.workers ?? '--workers'} above 1 in this version: run one process per node (switchboard cluster --nodes N)`);
  }
}
