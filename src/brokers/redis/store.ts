/**
 * Redis as a store only, for a broker that carries publications between
 * nodes some other way (RabbitMQ): numbering and history, presence and the
 * registry, exactly as the Redis broker keeps them (same keys, same
 * scripts), on one command connection (standalone) or a cluster client.
 * No pub/sub. Commands fail fast while Redis is unreachable and the
 * connection comes back on its own (see `connections.ts`).
 */
import type { Cluster, Redis } from 'ioredis';
import { BrokerError } from '../errors.js';
import { DEFAULT_TUNING, clusterClient, commandConnection, type ConnectionTuning } from './connections.js';
import { DEFAULT_PREFIX, RedisKeys } from './keys.js';
import { quit } from './link.js';
import type { CommandClient } from './lua.js';
import type { Store } from '../broker.js';
import type { EventLog } from '../events.js';
import { redisRecords } from './records.js';
import type { RedisRegistry } from './registry.js';
import type { RedisStreams } from './stream.js';
import type { RedisTarget } from './url.js';

export interface RedisStoreHooks {
  /** `ready` may have changed. */
  onChange(): void;
  onError(err: Error, where: string): void;
}

export interface RedisStoreOptions extends Partial<ConnectionTuning> {
  /** Prefix of every key (default: the target's, else `sb`). */
  prefix?: string;
  /** The connection is PINGed this often; one that does not answer is cut and reconnects (default 5000 ms, 0: never). */
  healthCheckMs?: number;
  /** CLIENT SETNAME of the connection. */
  name?: string;
}

const noop = (): void => undefined;

export class RedisStore {
  readonly keys: RedisKeys;
  /** History, acks and presence: the broker's `Store`. */
  readonly records: Store;
  /** Numbering and storing of publications. */
  readonly streams: RedisStreams;
  /** The registry by node id. */
  readonly registry: RedisRegistry;
  /** The event log (standalone Redis only). */
  readonly events: EventLog | undefined;
  private client: Redis | Cluster | undefined;
  private healthTimer: ReturnType<typeof setInterval> | undefined;
  private checking = false;
  private closed = false;
  /** The last connection error, for messages. */
  lastFault: Error | undefined;

  constructor(
    readonly target: RedisTarget,
    private readonly hooks: RedisStoreHooks,
    private readonly options: RedisStoreOptions = {},
  ) {
    this.keys = new RedisKeys(options.prefix ?? target.prefix ?? DEFAULT_PREFIX);
    const client = (): CommandClient => this.commands();
    ({ store: this.records, streams: this.streams, registry: this.registry, events: this.events } = redisRecords(
      client,
      this.keys,
      target.mode === 'cluster' ? 'spublish' : 'publish',
    ));
  }

  get ready(): boolean {
    return !this.closed && this.client?.status === 'ready';
  }

  /** `host:port` of every endpoint, for messages. */
  get where(): string {
    return this.target.endpoints.map((e) => `${e.host}:${e.port}`).join(',');
  }

  /** Start connecting (and reconnecting whenever the connection drops). */
  connect(): void {
    if (this.client || this.closed) return;
    const tuning: ConnectionTuning = {
      connectTimeoutMs: this.options.connectTimeoutMs ?? DEFAULT_TUNING.connectTimeoutMs,
      commandTimeoutMs: this.options.commandTimeoutMs ?? DEFAULT_TUNING.commandTimeoutMs,
      maxBackoffMs: Math.min(this.options.maxBackoffMs ?? DEFAULT_TUNING.maxBackoffMs, 1000),
    };
    const name = (this.options.name ?? 'switchboard:store').replace(/\s/g, '_');
    const client =
      this.target.mode === 'cluster'
        ? clusterClient(this.target, tuning, name)
        : commandConnection(this.target, this.target.endpoints[0]!, tuning, name);
    this.client = client;
    client.on('error', (err: Error) => {
      this.lastFault = err;
      this.hooks.onError(err, 'redis store');
    });
    if (this.target.mode === 'cluster') {
      client.on('node error', (err: Error, key: string) => this.hooks.onError(err, `redis store node ${key}`));
    }
    for (const event of ['ready', 'close', 'end', 'reconnecting']) client.on(event, () => this.hooks.onChange());
    client.connect().catch(noop);
    const every = this.options.healthCheckMs ?? 5000;
    if (every > 0 && this.target.mode === 'standalone') {
      this.healthTimer = setInterval(() => void this.healthCheck(), every);
      this.healthTimer.unref();
    }
  }

  /** The server's clock in ms (the clock the scripts stamp publications with). */
  async time(): Promise<number> {
    const client = this.commands() as Redis;
    const [seconds, micros] = await client.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    if (this.client) await quit(this.client);
  }

  private commands(): CommandClient & Pick<Redis, 'time'> {
    if (!this.client || this.closed) throw new BrokerError('not-started', 'redis store not started');
    if (this.client.status !== 'ready') throw new BrokerError('unavailable', `redis store at ${this.where} is unreachable`);
    return this.client as Redis;
  }

  /** A connection that answers nothing is cut, so that it reconnects (a half-open socket would otherwise look ready). */
  private async healthCheck(): Promise<void> {
    const client = this.client as Redis | undefined;
    if (this.checking || !client || client.status !== 'ready') return;
    this.checking = true;
    try {
      await client.ping();
    } catch (err) {
      if (client.status === 'ready' && !this.closed) {
        this.hooks.onError(err instanceof Error ? err : new Error(String(err)), 'redis store ping');
        client.disconnect(true);
      }
    } finally {
      this.checking = false;
    }
  }
}
