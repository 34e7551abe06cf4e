/**
 * The Redis broker, for standalone Redis (`redis://`, `rediss://`) and
 * Redis Cluster (`redis+cluster://`). Two kinds of connection: one for
 * commands (scripts, PUBLISH) and subscriber connections. Standalone: one,
 * with classic pub/sub, for everything. Cluster: one per master with
 * sharded pub/sub for channels and control messages, plus one classic
 * subscriber (on the first seed node, see `inbox.ts`) for the publications
 * routed to every node or to this node's inbox, which a cluster carries to
 * every cluster node. A publication with history, or routed to all nodes or
 * to inboxes, is numbered, stored and published by one script, so its
 * offset order is its delivery order on every node.
 *
 * Faults are survived: commands fail fast while Redis is unreachable, the
 * connections come back on their own, and `onReadyChange(true)` is called
 * only once every subscription is in place again.
 */
import type { Cluster, Redis } from 'ioredis';
import type { Broker, BrokerPublication, Idempotency, PublishReceipt, Registry, Route, Store } from '../broker.js';
import type { EventLog } from '../events.js';
import type { HistoryPolicy } from '../history.js';
import { ALL_ROUTES, TO_SUBSCRIBERS } from '../broker.js';
import { bindRegistry } from '../store.js';
import { closedError, notStartedError } from '../errors.js';
import { NetworkedBroker } from '../networked.js';
import { decodeEnvelope, type PublishInput } from './codec.js';
import {
  DEFAULT_TUNING,
  clusterClient,
  commandConnection,
  subscriberConnection,
  type ConnectionTuning,
} from './connections.js';
import { ClusterInbox } from './inbox.js';
import { SubscriptionMarks } from './marks.js';
import { DEFAULT_PREFIX, RedisKeys } from './keys.js';
import { quit, type LinkHooks } from './link.js';
import { ClassicPubSub, ShardedPubSub, type PubSub } from './pubsub.js';
import type { CommandClient } from './lua.js';
import { redisRecords } from './records.js';
import type { RedisStreams } from './stream.js';
import { parseRedisUrl, type RedisTarget } from './url.js';

export interface RedisBrokerOptions extends Partial<ConnectionTuning> {
  /** Prefix of every key and channel (default: the URL's `?prefix=`, else `sb`). */
  prefix?: string;
  /** How long `start` waits for Redis before it rejects (default 5000 ms). */
  startTimeoutMs?: number;
  /** Every connection is PINGed this often; one that does not answer is cut and reconnects (default 5000 ms, 0: never). */
  healthCheckMs?: number;
  /** Channels per SUBSCRIBE command (default 1000). */
  maxBatch?: number;
  /** Told of every fault the broker survives: connection errors, undecodable messages, handler exceptions. */
  onError?: (err: Error, where: string) => void;
}

const noop = (): void => undefined;
const endOfTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/**
 * Ends of turns a read's answer waits for its marker before it is read
 * again: the one of the poll that read the answer and the next one.
 */
const MARK_TURNS = 2;

export class RedisBroker extends NetworkedBroker implements Broker {
  readonly kind: 'redis' | 'redis-cluster';
  readonly routes = ALL_ROUTES;
  private readonly target: RedisTarget;
  /** Numbering and storing: `publish` goes through it. */
  private readonly streams: RedisStreams;
  private readonly keys: RedisKeys;
  private readonly tuning: ConnectionTuning;
  private nodeId: string | undefined;
  private controlSelf = '';
  private inboxSelf = '';
  private command: Redis | Cluster | undefined;
  /** Channels and control messages. */
  private pubsub: PubSub | undefined;
  /** The broadcast and inbox channels: `pubsub` itself standalone, a classic subscriber of its own in a cluster. */
  private routed: PubSub | undefined;
  /** History, acks and presence. */
  readonly store: Store;
  /** The registry, as this node's. */
  readonly registry: Registry;
  /** Registry and store on the command connection, which keeps the order of calls. */
  readonly registryOrdered = true;
  /** The event log (standalone Redis only). */
  readonly events?: EventLog;
  private healthTimer: ReturnType<typeof setInterval> | undefined;
  private checking = false;
  /** The end of this turn, while a read waits for it (see `subscribesSent`). */
  private turnEnd: Promise<void> | undefined;
  /** Markers proving a subscription (see `readSubscribing`). */
  private readonly marks = new SubscriptionMarks((name, payload) => this.publishOn(name, payload));

  constructor(
    target: RedisTarget | string,
    private readonly options: RedisBrokerOptions = {},
  ) {
    super(options.onError);
    this.target = typeof target === 'string' ? parseRedisUrl(target) : target;
    this.kind = this.target.mode === 'cluster' ? 'redis-cluster' : 'redis';
    this.keys = new RedisKeys(options.prefix ?? this.target.prefix ?? DEFAULT_PREFIX);
    this.tuning = {
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_TUNING.connectTimeoutMs,
      commandTimeoutMs: options.commandTimeoutMs ?? DEFAULT_TUNING.commandTimeoutMs,
      maxBackoffMs: Math.min(options.maxBackoffMs ?? DEFAULT_TUNING.maxBackoffMs, 1000),
    };
    const client = (): CommandClient => this.commands();
    const records = redisRecords(client, this.keys, this.target.mode === 'cluster' ? 'spublish' : 'publish');
    this.store = records.store;
    this.streams = records.streams;
    this.registry = bindRegistry(records.registry, () => this.self());
    if (records.events) this.events = records.events;
  }

  get ready(): boolean {
    return this.state === 'started' && this.subscribersReady;
  }

  protected async open(nodeId: string): Promise<void> {
    this.nodeId = nodeId;
    this.controlSelf = this.keys.controlOf(nodeId);
    this.inboxSelf = this.keys.inbox(nodeId);
    const timeoutMs = this.options.startTimeoutMs ?? 5000;
    const deadline = Date.now() + timeoutMs;
    try {
      const command = this.openCommand(nodeId);
      command.connect().catch(noop);
      await this.waitUntil(() => this.commandReady, deadline);

      this.pubsub = this.openPubSub(nodeId);
      this.routed = this.target.mode === 'cluster' ? this.openRouted(nodeId) : this.pubsub;
      this.pubsub.connect();
      if (this.routed !== this.pubsub) this.routed.connect();
      // Wanted from now on; placed (and re-placed after every reconnection) by the subscriber.
      this.pubsub.subscribe(this.keys.controlAll).catch(noop);
      this.pubsub.subscribe(this.controlSelf).catch(noop);
      this.routed.subscribe(this.keys.broadcast).catch(noop);
      this.routed.subscribe(this.inboxSelf).catch(noop);
      await this.waitUntil(() => this.subscribersReady, deadline);
    } catch (err) {
      if (this.closing) throw closedError('broker closed while starting');
      await this.close();
      const where = this.target.endpoints.map((e) => `${e.host}:${e.port}`).join(',');
      const cause = this.lastFault ? `: ${this.lastFault.message}` : '';
      throw new Error(`redis at ${where} was not reachable within ${timeoutMs} ms${cause}`, { cause: err });
    }
    const every = this.options.healthCheckMs ?? 5000;
    if (every > 0) {
      this.healthTimer = setInterval(() => void this.healthCheck(), every);
      this.healthTimer.unref();
    }
  }

  async subscribe(channel: string): Promise<void> {
    await this.subscriber().subscribe(this.keys.pubsub(channel));
  }

  unsubscribe(channel: string): Promise<void> {
    if (!this.pubsub || this.state === 'closed') return Promise.resolve();
    return this.pubsub.unsubscribe(this.keys.pubsub(channel));
  }

  publish(pub: PublishInput, history: HistoryPolicy | null, route: Route = TO_SUBSCRIBERS, once?: Idempotency): Promise<PublishReceipt> {
    return this.streams.publish(pub, history, route, once);
  }

  async sendControl(to: string | null, payload: string): Promise<void> {
    await this.publishOn(to === null ? this.keys.controlAll : this.keys.controlOf(to), payload);
  }

  /**
   * See `Transport.readSubscribing`: a marker (`marks.ts`) goes out on the
   * command connection after the SUBSCRIBE, and `read` right after it; when
   * the marker comes back through the subscription the read stands. When it
   * has not come by the end of the next poll after the answers to the read
   * and the subscription, the read runs again, and whichever comes first
   * wins: the marker (it was still on its way), or the new answer.
   */
  async readSubscribing<T>(channel: string, subscribed: Promise<void>, read: () => Promise<T>): Promise<T> {
    // Its failure is this call's, once awaited below.
    subscribed.catch(noop);
    // The subscriber writes its SUBSCRIBE at the end of the turn that asked for it (subscriptions.ts).
    await this.subscribesSent();
    const mark = this.marks.send(this.keys.pubsub(channel));
    try {
      const first = read();
      first.catch(noop);
      await subscribed;
      const answer = await first;
      // Redis sent the marker, if at all, before the read's answer, on the other socket: it is read in the
      // poll that read the answer or in the next one. Turns, not a timer: a busy loop does not read again for nothing.
      for (let turn = 0; turn < MARK_TURNS && !mark.came; turn++) await endOfTurn();
      if (mark.came) return answer;
      return await Promise.race([mark.arrived.then(() => answer), read()]);
    } finally {
      mark.end();
    }
  }

  /**
   * Settles at the end of this turn, once the subscriber has written the
   * SUBSCRIBEs asked for in it: one wait for every read of the turn, so
   * that their markers and reads go out together in one pipelined write.
   */
  private subscribesSent(): Promise<void> {
    this.turnEnd ??= endOfTurn().then(() => {
      this.turnEnd = undefined;
    });
    return this.turnEnd;
  }

  /** PUBLISH (SPUBLISH in a cluster) on pub/sub channel `name` from the command connection. */
  private async publishOn(name: string, payload: string): Promise<void> {
    const client = this.commands();
    await (this.target.mode === 'cluster' ? client.spublish(name, payload) : client.publish(name, payload));
  }

  // ---- connections ---------------------------------------------------------

  private get commandReady(): boolean {
    return this.command?.status === 'ready';
  }

  /** The command connection is up and every subscriber holds everything wanted. */
  private get subscribersReady(): boolean {
    return this.commandReady && (this.pubsub?.inSync ?? false) && (this.routed?.inSync ?? false);
  }

  /** This node's id, for its registry entries. */
  private self(): string {
    if (this.nodeId === undefined || this.state === 'closed') throw notStartedError();
    return this.nodeId;
  }

  private commands(): CommandClient {
    if (!this.command || this.state === 'closed') throw notStartedError();
    return this.command;
  }

  private subscriber(): PubSub {
    if (!this.pubsub || this.state === 'closed') throw notStartedError();
    return this.pubsub;
  }

  private openCommand(nodeId: string): Redis | Cluster {
    const name = `switchboard:${nodeId}:cmd`.replace(/\s/g, '_');
    const command =
      this.target.mode === 'cluster'
        ? clusterClient(this.target, this.tuning, name)
        : commandConnection(this.target, this.target.endpoints[0]!, this.tuning, name);
    this.command = command;
    command.on('error', (err: Error) => this.fault(err, 'command connection'));
    if (this.target.mode === 'cluster') {
      command.on('node error', (err: Error, key: string) => this.fault(err, `cluster node ${key}`));
    }
    for (const event of ['ready', 'close', 'end', 'reconnecting']) command.on(event, () => this.changed());
    return command;
  }

  private openPubSub(nodeId: string): PubSub {
    const name = `switchboard:${nodeId}:sub`.replace(/\s/g, '_');
    const hooks = this.linkHooks();
    if (this.target.mode === 'cluster') {
      return new ShardedPubSub(
        this.command as Cluster,
        (endpoint) => subscriberConnection(this.target, endpoint, this.tuning, name),
        hooks,
        this.options.maxBatch,
      );
    }
    return new ClassicPubSub(subscriberConnection(this.target, this.target.endpoints[0]!, this.tuning, name), hooks, this.options.maxBatch);
  }

  /** The classic subscriber of a cluster node, for the broadcast and inbox channels (any cluster node serves them). */
  private openRouted(nodeId: string): PubSub {
    const name = `switchboard:${nodeId}:in`.replace(/\s/g, '_');
    return new ClusterInbox(
      this.command as Cluster,
      subscriberConnection(this.target, this.target.endpoints[0]!, this.tuning, name),
      this.keys.probe(nodeId),
      this.linkHooks(),
      this.options.maxBatch,
    );
  }

  private linkHooks(): LinkHooks {
    return {
      onMessage: (channel, message) => this.deliver(channel, message),
      onChange: () => this.changed(),
      onError: (err, where) => this.fault(err, where),
    };
  }

  private deliver(name: string, message: string): void {
    if (!this.calls.attached) return;
    if (name === this.keys.controlAll || name === this.controlSelf) {
      this.calls.control(message, 'message handler');
      return;
    }
    if (this.marks.take(message)) return;
    const pub: BrokerPublication | undefined = decodeEnvelope(message);
    // Routed publications name their channel only inside the envelope.
    const routed = name === this.keys.broadcast || name === this.inboxSelf;
    if (!pub || (!routed && pub.channel !== this.keys.channelOf(name))) {
      this.fault(new Error(`undecodable message on ${name}: ${message.slice(0, 100)}`), 'pub/sub');
      return;
    }
    this.calls.publication(pub);
  }

  private async healthCheck(): Promise<void> {
    if (this.checking || this.state !== 'started') return;
    this.checking = true;
    try {
      const checks: Array<Promise<void>> = [this.pubsub?.ping() ?? Promise.resolve()];
      if (this.routed && this.routed !== this.pubsub) checks.push(this.routed.ping());
      const command = this.command;
      if (this.target.mode === 'standalone' && command?.status === 'ready') {
        checks.push(
          (command as Redis).ping().then(noop, (err: unknown) => {
            if (command.status !== 'ready' || this.state !== 'started') return;
            this.fault(err, 'command connection ping');
            (command as Redis).disconnect(true);
          }),
        );
      }
      await Promise.all(checks);
    } finally {
      this.checking = false;
    }
  }

  protected async release(): Promise<void> {
    if (this.healthTimer) clearInterval(this.healthTimer);
    const pubsub = this.pubsub;
    const routed = this.routed !== pubsub ? this.routed : undefined;
    const command = this.command;
    await Promise.all([pubsub?.close(), routed?.close(), command ? quit(command) : undefined]);
  }
}
