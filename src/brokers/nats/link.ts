/**
 * The broker's one NATS connection and whether it can be used now.
 *
 * nats.js reconnects on its own (to any server of the cluster) and sends
 * every subscription again before it reports `reconnect`. The link is
 * `up` only after that has been confirmed: a flush (the server processed
 * every SUB sent before it) and an answer from JetStream (a restarted
 * server, or a cluster that lost its meta leader, can take a moment). Every
 * operation checks `up` first and rejects at once while it is down, and
 * every request is bounded by `requestTimeoutMs`.
 */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, errors, type Msg, type NatsConnection, type Status, type Subscription } from '@nats-io/transport-node';
import { sleep, within } from '../../shared/time.js';
import { BrokerError, closedError } from '../errors.js';
import { natsConnectOptions, type NatsTarget } from './url.js';

/** NATS cannot be reached now. */
const unreachable = (): BrokerError => new BrokerError('unavailable', 'nats is unreachable');

export interface LinkTuning {
  /** How long `open` waits for a server (default 5000 ms). */
  connectTimeoutMs: number;
  /** Bound of every request: JetStream API calls, publish acks, flushes (default 5000 ms). */
  requestTimeoutMs: number;
  /** Client pings this often; two unanswered ones cut the connection (default 5000 ms). */
  pingIntervalMs: number;
  /**
   * In a NATS cluster, how long a new subscription is given to reach the
   * other servers (default 50 ms; see `settle`).
   */
  interestSettleMs: number;
}

export const DEFAULT_TUNING: LinkTuning = { connectTimeoutMs: 5000, requestTimeoutMs: 5000, pingIntervalMs: 5000, interestSettleMs: 50 };

export interface LinkHooks {
  /** `up` changed (never called for the first connection, nor after `close`). */
  onUpChange(up: boolean): void;
  onError(err: Error, where: string): void;
}

/** What a bounded request rejects with when NATS does not answer in time. */
const timedOut = (message: string): BrokerError => new BrokerError('timeout', message);

/** Each try of an idempotent read waits this long at most (see `NatsLink.read`). */
const READ_TRY_MS = 500;
/** Creating a stream waits this long at least. */
const ADMIN_TIMEOUT_MS = 10_000;

/** A request nobody answered (in time): worth another try if it is idempotent. */
function unanswered(err: unknown): boolean {
  return err instanceof errors.TimeoutError || err instanceof errors.NoRespondersError || (err instanceof errors.RequestError && err.isNoResponders());
}

export class NatsLink {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** For idempotent reads: a shorter timeout per try. */
  private readonly readJsm: JetStreamManager;
  /** For creating streams: replicated ones can take seconds (elections). */
  readonly admin: JetStreamManager;
  private up = true;
  /** Bumped on every disconnection: a resync of an older one is stale. */
  private generation = 0;
  private closed = false;
  private pendingFlush: Promise<void> | undefined;

  private constructor(
    readonly nc: NatsConnection,
    jsm: JetStreamManager,
    readJsm: JetStreamManager,
    admin: JetStreamManager,
    readonly tuning: LinkTuning,
    private readonly hooks: LinkHooks,
  ) {
    this.jsm = jsm;
    this.js = jetstream(nc, { timeout: tuning.requestTimeoutMs });
    this.readJsm = readJsm;
    this.admin = admin;
    void this.watch();
  }

  /**
   * An idempotent JetStream request, tried again when it goes unanswered,
   * until `requestTimeoutMs`. A stream can be briefly deaf, as when nodes
   * create it at the same moment or its leader changes: a request it
   * dropped is then not a reason to fail.
   */
  async read<T>(what: string, request: (jsm: JetStreamManager) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.tuning.requestTimeoutMs;
    for (;;) {
      this.check();
      const left = deadline - Date.now();
      try {
        return await within(request(this.readJsm), Math.min(READ_TRY_MS, Math.max(1, left)), what, timedOut);
      } catch (err) {
        if (!(unanswered(err) || err instanceof BrokerError) || Date.now() + 50 >= deadline) throw err;
      }
    }
  }

  /** Connects and checks that JetStream answers; rejects with a message naming the servers. */
  static async open(target: NatsTarget, name: string, tuning: LinkTuning, hooks: LinkHooks): Promise<NatsLink> {
    const where = target.servers.join(',');
    let nc: NatsConnection;
    try {
      nc = await within(
        connect({
          ...natsConnectOptions(target),
          name,
          timeout: tuning.connectTimeoutMs,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          reconnectJitter: 100,
          pingInterval: tuning.pingIntervalMs,
          maxPingOut: 2,
        }),
        tuning.connectTimeoutMs,
        'connect',
        timedOut,
      );
    } catch (err) {
      throw new Error(`nats at ${where} was not reachable within ${tuning.connectTimeoutMs} ms: ${message(err)}`, { cause: err });
    }
    try {
      const jsm = await within(jetstreamManager(nc, { timeout: tuning.requestTimeoutMs }), tuning.requestTimeoutMs, 'jetstream', timedOut);
      await within(jsm.getAccountInfo(), tuning.requestTimeoutMs, 'jetstream', timedOut);
      const readJsm = await jetstreamManager(nc, { timeout: Math.min(READ_TRY_MS, tuning.requestTimeoutMs), checkAPI: false });
      const admin = await jetstreamManager(nc, { timeout: Math.max(ADMIN_TIMEOUT_MS, tuning.requestTimeoutMs), checkAPI: false });
      return new NatsLink(nc, jsm, readJsm, admin, tuning, hooks);
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw new Error(`nats at ${where} answered, but JetStream did not (run nats-server with -js): ${message(err)}`, { cause: err });
    }
  }

  /** Connected, every subscription confirmed and JetStream answering. */
  get isUp(): boolean {
    return this.up && !this.closed;
  }

  /** Throws a `BrokerError` unless the link is up. */
  check(): void {
    if (this.closed) throw closedError();
    if (!this.up) throw unreachable();
  }

  subscribe(subject: string, onMessage: (msg: Msg) => void): Subscription {
    return this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) this.hooks.onError(err, `subscription ${subject}`);
        else onMessage(msg);
      },
    });
  }

  /**
   * Resolves once the server has processed everything sent before: one
   * PING for all callers of the same tick. Rejects while down and after
   * `requestTimeoutMs`.
   */
  flush(): Promise<void> {
    if (!this.isUp) return Promise.reject(this.closed ? closedError() : unreachable());
    this.pendingFlush ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.pendingFlush = undefined;
      return within(this.nc.flush(), this.tuning.requestTimeoutMs, 'flush', timedOut);
    });
    return this.pendingFlush;
  }

  /**
   * A flush confirms a subscription with the server the link is connected
   * to only; the other servers of a cluster learn of it a moment later (the
   * route protocol is asynchronous), and until then a message published
   * through them misses it. History does not depend on it (a read goes to
   * the stream leader over the same route, after the news of the
   * subscription), but control messages and publications without history
   * do, so a new subscription waits this long in a cluster.
   */
  async settle(): Promise<void> {
    if (this.nc.info?.cluster !== undefined && this.tuning.interestSettleMs > 0) await sleep(this.tuning.interestSettleMs);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await within(this.nc.close(), this.tuning.requestTimeoutMs, 'close', timedOut);
    } catch {
      // Closing a connection that is down or stuck: nothing more to do.
    }
  }

  private async watch(): Promise<void> {
    try {
      for await (const status of this.nc.status()) this.onStatus(status);
    } catch (err) {
      if (!this.closed) this.hooks.onError(err instanceof Error ? err : new Error(String(err)), 'status');
    }
  }

  private onStatus(status: Status): void {
    if (this.closed) return;
    switch (status.type) {
      case 'disconnect':
        this.generation++;
        this.setUp(false);
        return;
      case 'reconnect':
        void this.resync(++this.generation);
        return;
      case 'error':
        this.hooks.onError(status.error, 'connection');
        return;
      case 'staleConnection':
        this.hooks.onError(new Error('the server stopped answering pings'), 'connection');
        return;
      case 'slowConsumer':
        this.hooks.onError(new Error(`slow consumer: ${status.pending} messages pending`), 'connection');
        return;
      default:
        return;
    }
  }

  /** Back after a reconnection: confirm the subscriptions, then wait for JetStream. */
  private async resync(generation: number): Promise<void> {
    const current = (): boolean => generation === this.generation && !this.closed;
    for (let attempt = 0; current(); attempt++) {
      try {
        await within(this.nc.flush(), this.tuning.requestTimeoutMs, 'flush', timedOut);
        if (!current()) return;
        await within(this.jsm.getAccountInfo(), this.tuning.requestTimeoutMs, 'jetstream', timedOut);
        await this.settle();
        if (!current()) return;
        this.setUp(true);
        return;
      } catch (err) {
        if (!current()) return;
        if (attempt % 20 === 0) this.hooks.onError(err instanceof Error ? err : new Error(String(err)), 'resync');
        await sleep(250);
      }
    }
  }

  private setUp(up: boolean): void {
    if (up === this.up || this.closed) return;
    this.up = up;
    this.pendingFlush = undefined;
    this.hooks.onUpChange(up);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
