/**
 * How the broker's ioredis connections are made. Every connection fails
 * fast while Redis is unreachable (no offline queue, no retry of a command
 * that was in flight: a publish must reject, not be sent twice or late) and
 * reconnects forever with a backoff capped at `maxBackoffMs`. Subscriptions
 * are restored by the broker itself (`autoResubscribe: false`), so that it
 * knows when every one is back in place.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { reconnectDelay } from '../../shared/backoff.js';
import { tlsConnectOptions } from '../tls.js';
import type { RedisEndpoint, RedisTarget } from './url.js';

export interface ConnectionTuning {
  /** Give up one connection attempt after this long (default 2000 ms). */
  connectTimeoutMs: number;
  /** A command without a reply after this long fails (default 2000 ms). */
  commandTimeoutMs: number;
  /** Longest pause between reconnection attempts (default 1000 ms). */
  maxBackoffMs: number;
}

export const DEFAULT_TUNING: ConnectionTuning = { connectTimeoutMs: 2000, commandTimeoutMs: 2000, maxBackoffMs: 1000 };

function common(target: RedisTarget, tuning: ConnectionTuning, name: string): RedisOptions {
  const options: RedisOptions = {
    connectionName: name,
    lazyConnect: true,
    connectTimeout: tuning.connectTimeoutMs,
    commandTimeout: tuning.commandTimeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    enableReadyCheck: true,
  };
  if (target.username !== undefined) options.username = target.username;
  if (target.password !== undefined) options.password = target.password;
  if (target.tls) options.tls = tlsConnectOptions(target.tlsOptions);
  return options;
}

/** The standalone command connection. Commands issued in one tick share one write (auto-pipelining). */
export function commandConnection(target: RedisTarget, endpoint: RedisEndpoint, tuning: ConnectionTuning, name: string): Redis {
  return new Redis({
    ...common(target, tuning, name),
    host: endpoint.host,
    port: endpoint.port,
    db: target.db,
    enableAutoPipelining: true,
    retryStrategy: (attempt) => reconnectDelay(attempt, tuning.maxBackoffMs),
  });
}

/** A subscriber connection to one server (standalone, or one cluster master). */
export function subscriberConnection(target: RedisTarget, endpoint: RedisEndpoint, tuning: ConnectionTuning, name: string): Redis {
  return new Redis({
    ...common(target, tuning, name),
    host: endpoint.host,
    port: endpoint.port,
    retryStrategy: (attempt) => reconnectDelay(attempt, tuning.maxBackoffMs),
  });
}

/** The cluster command client: routes each command (and each script, by its first key) to the slot's master. */
export function clusterClient(target: RedisTarget, tuning: ConnectionTuning, name: string): Cluster {
  // The cluster owns the offline queue (off, below) and the node connections' reconnection.
  const { enableOfflineQueue: _nodeQueue, ...redisOptions } = common(target, tuning, name);
  const options: ClusterOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    enableReadyCheck: true,
    scaleReads: 'master',
    clusterRetryStrategy: (attempt) => reconnectDelay(attempt, tuning.maxBackoffMs),
    slotsRefreshTimeout: tuning.commandTimeoutMs,
    // Also follow topology changes that no MOVED reply reveals (a slot moving to a master we hold nothing on).
    slotsRefreshInterval: 5000,
    redisOptions,
  };
  return new Cluster(
    target.endpoints.map((e) => ({ host: e.host, port: e.port })),
    options,
  );
}
