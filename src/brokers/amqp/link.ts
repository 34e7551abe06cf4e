/**
 * The RabbitMQ side of one node: a connection with two channels, one to
 * publish on (in confirm mode) and one to consume on, the topology, the
 * node's queue and its bindings. A state machine: `connecting` → `up` →
 * `down` → `connecting` … until `closed`. amqplib's own recovery is not used:
 * "up" must mean the queue, every wanted binding and the consumer are back,
 * in that order, with the node's hook run in between (see `beforeConsume`).
 *
 * Every step is time-bounded; anything that fails (a timeout, a closed
 * channel, a refused declaration) drops the whole connection and starts over
 * after a capped, jittered backoff. Late events of a replaced connection are
 * ignored by generation.
 *
 * The consumer acknowledges manually, with a bounded prefetch: RabbitMQ
 * sends at most `prefetch` unacknowledged messages, so a node that falls
 * behind leaves the backlog in its queue (capped by `maxQueued`, oldest
 * dropped: a gap the sequencer then fills from history) rather than in its
 * own memory, which `noAck` would not bound. Acks are batched (`multiple`).
 */
import { connect, type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import { reconnectDelay } from '../../shared/backoff.js';
import type { TlsConnectOptions } from '../tls.js';
import { settleWithin, sleep } from '../../shared/time.js';
import { BrokerError, closedError } from '../errors.js';
import type { AmqpNames } from './names.js';

export interface LinkTuning {
  /** Give up one connection attempt (TCP + AMQP handshake) after this long (default 2000 ms). */
  connectTimeoutMs: number;
  /** Each declaration, binding and channel operation must answer within this (default 2000 ms). */
  operationTimeoutMs: number;
  /** A publish not confirmed within this rejects (default 2000 ms). */
  publishTimeoutMs: number;
  /** Longest pause between connection attempts (default 1000 ms). */
  maxBackoffMs: number;
  /** Unacknowledged deliveries at most (default 500). */
  prefetch: number;
  /** Messages the node queue holds at most; beyond, the oldest go (default 100 000). */
  maxQueued: number;
  /** Publishes awaiting confirmation at most; more reject at once (default 10 000). */
  maxPending: number;
}

export const DEFAULT_LINK_TUNING: LinkTuning = {
  connectTimeoutMs: 2000,
  operationTimeoutMs: 2000,
  publishTimeoutMs: 2000,
  maxBackoffMs: 1000,
  prefetch: 500,
  maxQueued: 100_000,
  maxPending: 10_000,
};

export interface LinkHooks {
  /** A message from the node queue: its `type` property and body. */
  onDelivery(type: string | undefined, body: Buffer): void;
  /**
   * Runs on every (re)connection once the queue and all its bindings are in
   * place and before consuming starts; a rejection starts over.
   */
  beforeConsume(): Promise<void>;
  /** `up` may have changed. */
  onChange(): void;
  onError(err: Error, where: string): void;
}

type LinkState = 'new' | 'connecting' | 'up' | 'down' | 'closed';

const noop = (): void => undefined;
const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

export class AmqpLink {
  private state: LinkState = 'new';
  private generation = 0;
  private model: ChannelModel | undefined;
  private publisher: ConfirmChannel | undefined;
  private subscriber: Channel | undefined;
  /** Routing keys the node queue should be bound with on the topic exchange. */
  private readonly wanted = new Set<string>();
  /** Bindings made (or being made) on the current connection. */
  private readonly bound = new Map<string, Promise<void>>();
  private readonly queue: string;
  /** Rejects every operation under way (connection lost or link closed). */
  private readonly aborts = new Set<(err: Error) => void>();
  private onLost: (() => void) | undefined;
  /** Ends the pause between reconnection attempts (on close). */
  private readonly stopPause = new AbortController();
  private running: Promise<void> | undefined;
  private pending = 0;
  private blocked: string | undefined;
  private unacked: ConsumeMessage | undefined;
  private unackedCount = 0;
  private ackScheduled = false;
  /** The last connection fault, for start's error message. */
  lastFault: Error | undefined;

  constructor(
    private readonly url: string,
    private readonly names: AmqpNames,
    private readonly nodeId: string,
    private readonly tuning: LinkTuning,
    private readonly hooks: LinkHooks,
    /** `amqps://`: the CA, client certificate and servername for the TLS socket. */
    private readonly tls: TlsConnectOptions = {},
  ) {
    this.queue = names.queue(nodeId);
  }

  /** Connected, with the queue, every wanted binding and the consumer in place. */
  get up(): boolean {
    return this.state === 'up';
  }

  /** Checked after awaits, where the compiler would keep an earlier narrowing of `state`. */
  private get closed(): boolean {
    return this.state === 'closed';
  }

  start(): void {
    if (this.state !== 'new') return;
    this.running = this.run();
  }

  /** Bind the node queue with `key` on the topic exchange; resolves once RabbitMQ confirmed it. */
  async bind(key: string): Promise<void> {
    this.wanted.add(key);
    if (this.state !== 'up') throw new BrokerError('unavailable', 'rabbitmq is unreachable');
    await this.bindKey(key);
  }

  /** Remove the binding (if any); never fails: without a connection there is nothing bound. */
  async unbind(key: string): Promise<void> {
    this.wanted.delete(key);
    if (!this.bound.delete(key)) return;
    const subscriber = this.subscriber;
    if (!subscriber) return;
    try {
      // Same channel, so it runs after the bind, however far along that is.
      await this.op(subscriber.unbindQueue(this.queue, this.names.topic, key), 'unbind');
    } catch (err) {
      // The channel is gone with its connection (and the queue with it), or is going: nothing stays bound.
      if (this.state === 'up') this.fault(err, 'rabbitmq unbind');
    }
  }

  /** Publish on the confirm channel; resolves once RabbitMQ confirmed it, rejects when it refused or is unreachable. */
  publish(exchange: string, routingKey: string, body: Buffer, type: string): Promise<void> {
    const channel = this.publisher;
    if (this.state !== 'up' || !channel) return Promise.reject(new BrokerError('unavailable', 'rabbitmq is unreachable'));
    if (this.blocked !== undefined) return Promise.reject(new BrokerError('unavailable', `rabbitmq is not accepting publications: ${this.blocked}`));
    if (this.pending >= this.tuning.maxPending) {
      return Promise.reject(new BrokerError('unavailable', `${this.pending} publications already await rabbitmq's confirmation`));
    }
    this.pending++;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: Error): void => {
        if (settled) return;
        settled = true;
        this.pending--;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const ms = this.tuning.publishTimeoutMs;
      const timer = setTimeout(() => finish(new BrokerError('timeout', `rabbitmq did not confirm within ${ms} ms`)), ms);
      try {
        channel.publish(exchange, routingKey, body, { type }, (err: unknown) =>
          finish(err ? new BrokerError('unavailable', `rabbitmq did not accept the message: ${asError(err).message}`) : undefined),
        );
      } catch (err) {
        finish(new BrokerError('unavailable', `rabbitmq is unreachable: ${asError(err).message}`));
      }
    });
  }

  /** Idempotent: stops reconnecting, rejects what is under way, closes the connection. */
  async close(): Promise<void> {
    if (this.state !== 'closed') {
      const wasUp = this.state === 'up';
      this.state = 'closed';
      this.abortAll(closedError());
      this.stopPause.abort();
      this.onLost?.();
      if (wasUp) this.changed();
    }
    await this.running;
  }

  // ---- the connection loop -----------------------------------------------------

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      const generation = ++this.generation;
      const lost = new Promise<void>((resolve) => (this.onLost = resolve));
      try {
        this.setState('connecting');
        await this.open(generation);
        attempt = 0;
        await lost;
      } catch (err) {
        if (!this.closed) {
          this.lastFault = asError(err);
          this.fault(err, 'rabbitmq connection');
        }
      }
      await this.teardown();
      if (this.closed) break;
      await this.pause(reconnectDelay(++attempt, this.tuning.maxBackoffMs));
    }
  }

  private async open(generation: number): Promise<void> {
    const model = await this.op(
      connect(this.url, {
        timeout: this.tuning.connectTimeoutMs,
        // amqplib leaves Nagle on: every publish would wait for the previous one's ACK (p50 35–44 ms in bench/routing.ts).
        noDelay: true,
        clientProperties: { connection_name: `switchboard:${this.nodeId}` },
        ...this.tls,
      }),
      'connect',
      (late) => void closeModel(late),
    );
    this.model = model;
    model.on('error', (err: Error) => this.fault(err, 'rabbitmq connection'));
    model.on('close', (err?: Error) => this.lost(generation, err ?? new Error('connection closed')));
    model.on('blocked', (reason: string) => (this.blocked = reason || 'resource alarm'));
    model.on('unblocked', () => (this.blocked = undefined));
    if (this.closed) throw closedError();

    const publisher = await this.op(model.createConfirmChannel(), 'open a channel');
    const subscriber = await this.op(model.createChannel(), 'open a channel');
    for (const channel of [publisher, subscriber]) {
      channel.on('error', (err: Error) => this.fault(err, 'rabbitmq channel'));
      // A channel closes only on an error (or with its connection): start over either way.
      channel.on('close', () => this.lost(generation, new Error('channel closed')));
    }
    this.publisher = publisher;
    this.subscriber = subscriber;

    const exchange = { durable: false, autoDelete: true };
    await this.op(
      Promise.all([
        publisher.assertExchange(this.names.topic, 'topic', exchange),
        publisher.assertExchange(this.names.fanout, 'fanout', exchange),
        publisher.assertExchange(this.names.direct, 'direct', exchange),
      ]),
      'declare the exchanges',
    );
    await this.op(
      subscriber.assertQueue(this.queue, {
        exclusive: true,
        autoDelete: true,
        durable: false,
        arguments: { 'x-max-length': this.tuning.maxQueued, 'x-overflow': 'drop-head' },
      }),
      `declare queue ${this.queue}`,
    );
    await this.op(
      Promise.all([
        subscriber.bindQueue(this.queue, this.names.fanout, ''),
        subscriber.bindQueue(this.queue, this.names.direct, this.nodeId),
        subscriber.bindQueue(this.queue, this.names.topic, this.names.anchor),
      ]),
      'bind the node queue',
    );
    // Every wanted binding, including any wanted meanwhile, is in place before the hook runs.
    for (;;) {
      await Promise.all([...this.wanted].map((key) => this.bindKey(key)));
      await this.op(this.hooks.beforeConsume(), 'prepare');
      if ([...this.wanted].every((key) => this.bound.has(key))) break;
    }
    await this.op(subscriber.prefetch(this.tuning.prefetch), 'set the prefetch');
    await this.op(
      subscriber.consume(this.queue, (msg) => this.delivered(generation, subscriber, msg), { noAck: false, exclusive: true }),
      'consume',
    );
    this.setState('up');
  }

  /** The connection of `generation` failed: the loop tears it down and starts over. */
  private lost(generation: number, err: Error): void {
    if (generation !== this.generation || this.state === 'closed') return;
    // The close that follows our own teardown is no news.
    if (this.state !== 'down') this.lastFault = err;
    this.abortAll(new BrokerError('unavailable', `rabbitmq connection lost: ${err.message}`));
    if (this.state === 'up') this.setState('down');
    this.onLost?.();
  }

  private async teardown(): Promise<void> {
    const model = this.model;
    this.model = undefined;
    this.publisher = undefined;
    this.subscriber = undefined;
    this.bound.clear();
    this.blocked = undefined;
    this.unacked = undefined;
    this.unackedCount = 0;
    if (this.state !== 'closed') this.setState('down');
    if (model) await closeModel(model);
  }

  /** Wait `ms`, or less if the link is closed meanwhile. */
  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopPause.signal }).catch(noop);
  }

  private bindKey(key: string): Promise<void> {
    const existing = this.bound.get(key);
    if (existing) return existing;
    const subscriber = this.subscriber;
    if (!subscriber) return Promise.reject(new BrokerError('unavailable', 'rabbitmq is unreachable'));
    const binding = this.op(subscriber.bindQueue(this.queue, this.names.topic, key), 'bind').then(noop);
    this.bound.set(key, binding);
    binding.catch(() => {
      if (this.bound.get(key) === binding) this.bound.delete(key);
    });
    return binding;
  }

  private delivered(generation: number, channel: Channel, msg: ConsumeMessage | null): void {
    if (generation !== this.generation || this.state === 'closed') return;
    if (msg === null) {
      this.lost(generation, new Error('rabbitmq cancelled the consumer (queue deleted?)'));
      return;
    }
    try {
      this.hooks.onDelivery(msg.properties.type as string | undefined, msg.content);
    } catch (err) {
      this.fault(err, 'message handler');
    }
    this.unacked = msg;
    if (++this.unackedCount >= Math.max(1, this.tuning.prefetch >> 1)) this.ack(generation, channel);
    else if (!this.ackScheduled) {
      this.ackScheduled = true;
      setImmediate(() => {
        this.ackScheduled = false;
        this.ack(generation, channel);
      });
    }
  }

  /** Acknowledge everything delivered so far in one frame. */
  private ack(generation: number, channel: Channel): void {
    const msg = this.unacked;
    if (generation !== this.generation || !msg) return;
    this.unacked = undefined;
    this.unackedCount = 0;
    try {
      channel.ack(msg, true);
    } catch {
      // The channel closed: its messages go with the queue, and `lost` starts over.
    }
  }

  /** `p`, rejected after `operationTimeoutMs` or when the connection is lost; `orphan` gets a value that arrives too late. */
  private op<T>(p: Promise<T>, what: string, orphan?: (late: T) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | undefined, value?: T): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.aborts.delete(abort);
        if (err) reject(err);
        else resolve(value as T);
      };
      const abort = (err: Error): void => finish(err);
      const ms = what === 'connect' ? this.tuning.connectTimeoutMs : this.tuning.operationTimeoutMs;
      const timer = setTimeout(() => finish(new BrokerError('timeout', `rabbitmq: ${what}: no answer within ${ms} ms`)), ms);
      this.aborts.add(abort);
      p.then(
        (value) => {
          if (settled) orphan?.(value);
          finish(undefined, value);
        },
        (err: unknown) => finish(new BrokerError('unavailable', `rabbitmq: ${what}: ${asError(err).message}`)),
      );
    });
  }

  private abortAll(err: Error): void {
    const aborts = [...this.aborts];
    this.aborts.clear();
    for (const abort of aborts) abort(err);
  }

  private setState(next: LinkState): void {
    if (this.state === next || this.state === 'closed') return;
    const wasUp = this.state === 'up';
    this.state = next;
    if (wasUp || next === 'up') this.changed();
  }

  private changed(): void {
    try {
      this.hooks.onChange();
    } catch (err) {
      this.fault(err, 'link state handler');
    }
  }

  private fault(err: unknown, where: string): void {
    this.hooks.onError(asError(err), where);
  }
}

/** Close politely (bounded), then drop the socket either way. */
async function closeModel(model: ChannelModel, timeoutMs = 1000): Promise<void> {
  await settleWithin(model.close(), timeoutMs);
  // amqplib exposes no way to drop a connection that does not answer its close: end the socket itself.
  (model.connection as unknown as { stream?: { destroy?(): void } }).stream?.destroy?.();
}
