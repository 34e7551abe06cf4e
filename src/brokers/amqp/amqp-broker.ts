/**
 * The RabbitMQ broker (`amqp://…?store=redis://…`). RabbitMQ carries the
 * messages between nodes; AMQP 0.9.1 cannot number a channel's messages nor
 * tell a publisher where its message landed, so the numbering, history,
 * presence and registry live in Redis, kept exactly as the Redis broker
 * keeps them (`redis/store.ts`).
 *
 * A publication with history is numbered and stored by one script, which
 * also resolves a `nodes` route from the registry in the same step and tells
 * each receiver's predecessor; then it is published on a confirm channel,
 * and `publish` resolves once RabbitMQ confirmed every copy (one per target
 * inbox for `nodes`). Without history no Redis call is needed, except the
 * registry lookup of a `nodes` route that asks for it. Messages are not
 * persistent: node queues are exclusive and auto-delete (they die with
 * their node, and history is in Redis), so writing them to disk buys nothing.
 *
 * On the receiving side a sequencer (`sequencer.ts`) restores offset order
 * per channel, since two publishers' messages can reach RabbitMQ in either
 * order. Control messages share the node queue (message type `c`), through
 * the fanout exchange (every node) or the direct one (one node).
 *
 * `ready` holds while both RabbitMQ and the Redis store are reachable. The
 * link reconnects by itself with a capped backoff and reports itself up
 * only once the queue, every binding and the consumer are back.
 */
import type { PublishResult } from '../../protocol/index.js';
import type { Broker, Idempotency, PublishReceipt, Registry, Route, Store } from '../broker.js';
import type { EventLog } from '../events.js';
import type { HistoryPolicy } from '../history.js';
import { ALL_ROUTES, TO_SUBSCRIBERS } from '../broker.js';
import { composeStore } from '../store.js';
import { BrokerError, closedError, notStartedError } from '../errors.js';
import { NetworkedBroker } from '../networked.js';
import { encodeStored, type PublishInput } from '../redis/codec.js';
import { RedisStore } from '../redis/store.js';
import type { StoredRoute } from '../redis/stream.js';
import { CONTROL, PUBLICATION, decodeBody, numberedBody, plainBody } from './codec.js';
import { AmqpLink, DEFAULT_LINK_TUNING, type LinkTuning } from './link.js';
import { AmqpNames, DEFAULT_PREFIX } from './names.js';
import { Sequencer, type SequencerStats } from './sequencer.js';
import { STORE_REQUIRED, parseAmqpUrl, type AmqpTarget } from './url.js';
import { tlsConnectOptions } from '../tls.js';

export interface AmqpBrokerOptions extends Partial<LinkTuning> {
  /** Prefix of exchange, queue and key names (default: the URL's `?prefix=`, else `sb`). */
  prefix?: string;
  /** How long `start` waits for RabbitMQ and the store before it rejects (default 5000 ms). */
  startTimeoutMs?: number;
  /** AMQP heartbeat in seconds when the URL sets none: a silent connection is dropped after about twice this (default 5). */
  heartbeatS?: number;
  /** How long a gap in a channel's offsets may stay open before it is filled from history (default 150 ms). */
  gapMs?: number;
  /** Publications held per channel while a gap is open (default 1000). */
  maxHeld?: number;
  /** A channel's ordering state is forgotten after this long without traffic (default 60 000 ms). */
  idleMs?: number;
  /** Told of every fault the broker survives: connection errors, undecodable messages, skipped gaps, handler exceptions. */
  onError?: (err: Error, where: string) => void;
}

export class AmqpBroker extends NetworkedBroker implements Broker {
  readonly kind = 'rabbitmq';
  readonly routes = ALL_ROUTES;
  private readonly target: AmqpTarget & { store: NonNullable<AmqpTarget['store']> };
  private readonly names: AmqpNames;
  /** The Redis store: its connection, numbering and registry. */
  private readonly redis: RedisStore;
  /** History, acks and presence in the Redis store. */
  readonly store: Store;
  /** The registry in the Redis store, as this node's. */
  readonly registry: Registry;
  /** Registry and store on the Redis store's one connection, which keeps the order of calls. */
  readonly registryOrdered = true;
  /** The event log in the Redis store (a standalone Redis only). */
  readonly events?: EventLog;
  private nodeId = '';
  private link: AmqpLink | undefined;
  private sequencer: Sequencer | undefined;
  /** Channels subscribed (or being subscribed): the subscribe call under way or done. */
  private readonly subscriptions = new Map<string, Promise<void>>();
  /** Channels this node registered (and has not unregistered). */
  private readonly registeredHere = new Set<string>();

  constructor(
    url: string,
    private readonly options: AmqpBrokerOptions = {},
  ) {
    super(options.onError);
    const target = parseAmqpUrl(url);
    if (!target.store) throw new Error(STORE_REQUIRED);
    this.target = { ...target, store: target.store };
    const prefix = options.prefix ?? target.prefix ?? DEFAULT_PREFIX;
    this.names = new AmqpNames(prefix);
    this.redis = new RedisStore(
      target.store,
      { onChange: () => this.changed(), onError: (err, where) => this.fault(err, where) },
      { prefix: target.store.prefix ?? prefix },
    );
    this.store = composeStore([this.redis.records], () => this.live());
    if (this.redis.events) this.events = this.redis.events;
    this.registry = {
      register: (channels) => this.register(channels),
      unregister: (channels) => this.unregister(channels),
      registered: async (channel) => {
        this.live();
        return this.redis.registry.list(channel);
      },
    };
  }

  /** The ordering state: gaps filled from history, skipped, duplicates dropped. */
  get ordering(): SequencerStats | undefined {
    return this.sequencer?.stats;
  }

  get ready(): boolean {
    return this.state === 'started' && this.bothUp;
  }

  protected async open(nodeId: string): Promise<void> {
    this.nodeId = nodeId;
    const options = this.options;
    this.sequencer = new Sequencer({
      deliver: (pub) => this.calls.publication(pub, 'publication handler'),
      fill: (channel, from, to, limit) => this.redis.streams.range(channel, from, to, limit),
      onFault: (err, where) => this.fault(err, where),
      ...(options.gapMs === undefined ? {} : { gapMs: options.gapMs }),
      ...(options.maxHeld === undefined ? {} : { maxHeld: options.maxHeld }),
      ...(options.idleMs === undefined ? {} : { idleMs: options.idleMs }),
    });
    const tuning: LinkTuning = { ...DEFAULT_LINK_TUNING };
    for (const key of Object.keys(DEFAULT_LINK_TUNING) as Array<keyof LinkTuning>) {
      const value = options[key];
      if (value !== undefined) tuning[key] = value;
    }
    const sequencer = this.sequencer;
    this.link = new AmqpLink(withDefault(this.target.url, 'heartbeat', String(options.heartbeatS ?? 5)), this.names, nodeId, tuning, {
      onDelivery: (type, body) => this.delivered(type, body),
      // Everything stored after this instant was published after the bindings were in place.
      beforeConsume: async () => sequencer.setHorizon(await this.redis.time()),
      onChange: () => this.changed(),
      onError: (err, where) => this.fault(err, where),
    }, tlsConnectOptions(this.target.tlsOptions));

    const timeoutMs = options.startTimeoutMs ?? 5000;
    this.redis.connect();
    this.link.start();
    try {
      await this.waitUntil(() => this.bothUp, Date.now() + timeoutMs);
    } catch (err) {
      if (this.closing) throw closedError('broker closed while starting');
      const link = this.link;
      const storeUp = this.redis.ready;
      await this.close();
      const problems: string[] = [];
      // Without the store the link fails its last step (reading the store's clock): that is no fault of RabbitMQ's.
      if (storeUp || !link.lastFault?.message.includes('redis store')) {
        problems.push(`rabbitmq at ${this.target.where}${link.lastFault ? ` (${link.lastFault.message})` : ''}`);
      }
      if (!storeUp) {
        problems.push(`the redis store at ${this.redis.where}${this.redis.lastFault ? ` (${this.redis.lastFault.message})` : ''}`);
      }
      throw new Error(`${problems.join(' and ')} not reachable within ${timeoutMs} ms`, { cause: err });
    }
  }

  subscribe(channel: string): Promise<void> {
    let link: AmqpLink;
    try {
      link = this.live();
    } catch (err) {
      return Promise.reject(err);
    }
    const existing = this.subscriptions.get(channel);
    if (existing) return existing;
    const key = this.names.routingKey(channel);
    let subscribing: Promise<void> | undefined;
    subscribing = (async () => {
      await link.bind(key);
      // Read after the binding is in place: anything up to `top` is in history, anything later arrives.
      const { top, epoch } = await this.redis.streams.range(channel, 1, 0, 1);
      if (this.subscriptions.get(channel) === subscribing) this.sequencer?.prime(channel, top, epoch === '' ? undefined : epoch);
    })();
    this.subscriptions.set(channel, subscribing);
    subscribing.catch(() => {
      if (this.subscriptions.get(channel) !== subscribing) return;
      this.subscriptions.delete(channel);
      void link.unbind(key);
    });
    return subscribing;
  }

  async unsubscribe(channel: string): Promise<void> {
    const link = this.link;
    if (!link || this.state === 'closed' || !this.subscriptions.delete(channel)) return;
    await link.unbind(this.names.routingKey(channel));
    // Unless subscribed again meanwhile (its priming comes), or still registered.
    if (!this.subscriptions.has(channel) && !this.registeredHere.has(channel)) this.sequencer?.forget(channel);
  }

  async publish(pub: PublishInput, history: HistoryPolicy | null, route: Route = TO_SUBSCRIBERS, once?: Idempotency): Promise<PublishReceipt> {
    const link = this.live();
    if (!this.ready) throw new BrokerError('unavailable', this.redis.ready ? 'rabbitmq is unreachable' : 'the redis store is unreachable');
    const stored = encodeStored(pub);
    const ts = Number.isFinite(pub.ts) ? Math.trunc(pub.ts) : Date.now();
    const keeps = history !== null && history.size > 0;
    // Redis only numbers (with history), resolves the registry and keeps
    // idempotency keys: without any of them, straight to RabbitMQ.
    const placed: StoredRoute | undefined =
      keeps || (route.to === 'nodes' && route.registered) || once
        ? await this.redis.streams.storeRouted(pub, history, route, once)
        : undefined;
    const numbered =
      keeps && placed?.offset !== undefined && placed.epoch !== undefined ? { ...placed, offset: placed.offset, epoch: placed.epoch } : undefined;
    const result: PublishResult = numbered ? { offset: numbered.offset, epoch: numbered.epoch } : {};
    // The first publish with this key sent it (or, if it failed after
    // storing, receivers fill the gap from history with the next one).
    if (placed?.duplicate) return { ...result, duplicate: true };

    if (route.to === 'nodes') {
      const targets = placed ? placed.prevs : [...new Set(route.nodes)].map((node) => ({ node, offset: 0, at: 0 }));
      const plain = numbered ? undefined : Buffer.from(plainBody(stored, ts));
      await Promise.all(
        targets.map((target) => {
          const body = numbered ? Buffer.from(numberedBody(stored, ts, numbered.offset, numbered.epoch, numbered.at, target)) : plain!;
          return link.publish(this.names.direct, target.node, body, PUBLICATION);
        }),
      );
      return result;
    }
    const [own, ...others] = numbered?.prevs ?? [];
    const body =
      numbered && own
        ? numberedBody(stored, ts, numbered.offset, numbered.epoch, numbered.at, own, others)
        : plainBody(stored, ts);
    const [exchange, key] = route.to === 'all' ? [this.names.fanout, ''] : [this.names.topic, this.names.routingKey(pub.channel)];
    await link.publish(exchange, key, Buffer.from(body), PUBLICATION);
    return result;
  }

  /** Registered channels keep their ordering state while unsubscribed (see `unsubscribe`). */
  private async register(channels: string[]): Promise<void> {
    this.live();
    await this.redis.registry.add(this.nodeId, channels);
    for (const c of channels) this.registeredHere.add(c);
  }

  private async unregister(channels: string[]): Promise<void> {
    this.live();
    await this.redis.registry.remove(this.nodeId, channels);
    for (const c of channels) {
      if (this.registeredHere.delete(c) && !this.subscriptions.has(c)) this.sequencer?.forget(c);
    }
  }

  async sendControl(to: string | null, payload: string): Promise<void> {
    const link = this.live();
    await link.publish(to === null ? this.names.fanout : this.names.direct, to ?? '', Buffer.from(payload, 'utf8'), CONTROL);
  }

  // ---- internals -------------------------------------------------------------

  private get bothUp(): boolean {
    return (this.link?.up ?? false) && this.redis.ready;
  }

  /** The link of a started broker; throws otherwise (callers are async: a rejection, at once). */
  private live(): AmqpLink {
    if (!this.link || this.state === 'closed' || this.state === 'new') throw notStartedError();
    return this.link;
  }

  private delivered(type: string | undefined, body: Buffer): void {
    if (!this.calls.attached) return;
    if (type === CONTROL) {
      this.calls.control(body.toString('utf8'), 'message handler');
      return;
    }
    const decoded = type === PUBLICATION ? decodeBody(body.toString('utf8'), this.nodeId) : undefined;
    if (!decoded) {
      this.fault(new Error(`undecodable message (type ${String(type)}): ${body.toString('utf8', 0, 100)}`), 'rabbitmq consumer');
      return;
    }
    // Without a number there is no order to keep.
    if (decoded.order) this.sequencer?.push(decoded.pub, decoded.order);
    else this.calls.publication(decoded.pub);
  }

  protected async release(): Promise<void> {
    this.sequencer?.close();
    await Promise.all([this.link?.close(), this.redis.close()]);
  }
}

/** `url` with `name=value` added to its query unless it sets `name` already. */
function withDefault(url: string, name: string, value: string): string {
  const query = url.split('?')[1] ?? '';
  if (query.split('&').some((p) => p.split('=')[0] === name)) return url;
  return `${url}${url.includes('?') ? '&' : '?'}${name}=${value}`;
}
