/**
 * The NATS broker (`nats://h1:p1,h2:p2`): core NATS carries publications
 * and control messages, JetStream keeps history (`history.ts`), acks
 * (`ledger.ts`) and presence (`presence.ts`). There is no registry
 * (`registry` is undefined).
 *
 * Routes. NATS cannot read a registry in the same step as storing a
 * message, so this broker carries no `nodes` route. What it carries is
 * chosen at construction from the routes the node will use:
 *
 * - interest mode (`subscribers`): `subscribe(channel)` is a core
 *   subscription on the channel's subject, confirmed by a flush before it
 *   resolves (so "subscribe, then read history" misses nothing);
 * - all mode (when `all` is wanted): the node subscribes to every channel's
 *   subject at start. Publications routed to all nodes are delivered
 *   whatever the node subscribed to; the others only for channels it
 *   subscribed to, filtered here (it receives everything anyway), so it
 *   carries `subscribers` too and each publication is delivered once.
 *
 * A publication with history reaches nodes only through the history
 * stream's republish, once stored, in offset order; one without is
 * published on the channel's subject directly and confirmed by a flush.
 *
 * Faults are survived: operations reject at once while NATS is unreachable,
 * the connection comes back on its own (to any server of the cluster), and
 * `onReadyChange(true)` follows once every subscription is confirmed again
 * and JetStream answers.
 */
import type { Msg, Subscription } from '@nats-io/transport-node';
import type { PublishResult } from '../../protocol/index.js';
import type { Broker, Idempotency, PublishReceipt, Route, Store } from '../broker.js';
import { resumeInTwoReads, type HistoryPolicy } from '../history.js';
import { TO_SUBSCRIBERS } from '../broker.js';
import { composeStore } from '../store.js';
import { closedError, notStartedError } from '../errors.js';
import { ChannelOrder } from '../channel-order.js';
import { NetworkedBroker } from '../networked.js';
import { H_ROUTE, H_SEQUENCE, H_STREAM, decodeDelivered, encodeStored, isMarker, publicationHeaders, type PublishInput } from './codec.js';
import { NatsHistory } from './history.js';
import { DEFAULT_TUNING, NatsLink, type LinkTuning } from './link.js';
import { NatsLedger } from './ledger.js';
import { DEFAULT_PREFIX, NatsNames } from './names.js';
import { NatsPresence } from './presence.js';
import { NatsStreams } from './streams.js';
import { parseNatsUrl, type NatsTarget } from './url.js';

export interface NatsBrokerOptions extends Partial<LinkTuning> {
  /** Prefix of every subject, stream and bucket (default: the URL's `?prefix=`, else `sb`). */
  prefix?: string;
  /** JetStream replicas of the streams and the presence bucket (default: the URL's `?replicas=`, else 1). */
  replicas?: number;
  /**
   * The routes the node will use. With `all` among them the broker runs in
   * all mode (see above); otherwise in interest mode. Default: `subscribers`.
   */
  routes?: ReadonlyArray<Route['to']>;
  /** Told of every fault the broker survives: connection errors, undecodable messages, handler exceptions. */
  onError?: (err: Error, where: string) => void;
}

const NOT_SUPPORTED = 'registry routing is not supported by the NATS broker (it cannot read a registry in the same step as storing): use interest or broadcast routing';

export class NatsBroker extends NetworkedBroker implements Broker {
  readonly kind = 'nats';
  readonly routes: ReadonlyArray<Route['to']>;
  private readonly target: NatsTarget;
  private readonly names: NatsNames;
  private readonly tuning: LinkTuning;
  private readonly allMode: boolean;
  /** History: numbering, storing, reading. */
  private readonly histories: NatsHistory;
  /** Acknowledged positions and idempotency keys. */
  private readonly ledger: NatsLedger;
  /** History, acks and presence; no `registry` (see `Broker`). */
  readonly store: Store;
  /**
   * Publications pass through here to reach the node in offset order per
   * channel. A history stream stores a channel's messages in offset order,
   * but a NATS server may republish two of them, stored from two client
   * connections at once, in the other order (seen on 2.9 under load). One
   * that skips ahead waits at most 100 ms for the ones before it; after the
   * wait the held ones go on with the gap left open: the node fills it from
   * history (see the gateway's continuity).
   */
  private readonly order = new ChannelOrder({
    deliver: (pub) => this.calls.publication(pub),
    onFault: (err, where) => this.fault(err, where),
    predecessor: (pub) => pub.offset! - 1,
    holdMs: 100,
  });
  private link: NatsLink | undefined;
  private controlSelf = '';
  /** Interest mode: the subscription of each channel. */
  private readonly subscriptions = new Map<string, Subscription>();
  /** All mode: the channels subscribed to (publications routed to subscribers are delivered for these only). */
  private readonly local = new Set<string>();
  /** All mode: the channels subscribed to, including those whose `subscribe` has not resolved yet. */
  private readonly wanted = new Set<string>();

  constructor(
    target: NatsTarget | string,
    options: NatsBrokerOptions = {},
  ) {
    super(options.onError);
    this.target = typeof target === 'string' ? parseNatsUrl(target) : target;
    this.names = new NatsNames(options.prefix ?? this.target.prefix ?? DEFAULT_PREFIX);
    this.tuning = {
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_TUNING.connectTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_TUNING.requestTimeoutMs,
      pingIntervalMs: options.pingIntervalMs ?? DEFAULT_TUNING.pingIntervalMs,
      interestSettleMs: options.interestSettleMs ?? DEFAULT_TUNING.interestSettleMs,
    };
    this.allMode = options.routes?.includes('all') ?? false;
    this.routes = this.allMode ? ['subscribers', 'all'] : ['subscribers'];
    const replicas = options.replicas ?? this.target.replicas ?? 1;
    const link = (): NatsLink => this.live();
    const policyStreams = new NatsStreams(link, this.names, replicas);
    this.histories = new NatsHistory(link, this.names, policyStreams, (err, where) => this.fault(err, where));
    this.ledger = new NatsLedger(link, this.names, policyStreams, replicas);
    // The acknowledged position lives in a key-value bucket, the history in a stream: two reads.
    const resume = { resume: (channel: string, reader: string, policy: HistoryPolicy) => resumeInTwoReads(this.store, channel, reader, policy) };
    this.store = composeStore([this.histories, this.ledger, resume, new NatsPresence(link, this.names, policyStreams, replicas)]);
  }

  get ready(): boolean {
    return this.state === 'started' && (this.link?.isUp ?? false);
  }

  protected async open(nodeId: string): Promise<void> {
    this.controlSelf = this.names.controlOf(nodeId);
    let link: NatsLink;
    try {
      link = await NatsLink.open(this.target, `switchboard:${nodeId}`, this.tuning, {
        onUpChange: (up) => this.readyChanged(up),
        onError: (err, where) => this.fault(err, where),
      });
    } catch (err) {
      await this.close();
      throw err;
    }
    if (this.closing) {
      await link.close();
      throw closedError('broker closed while starting');
    }
    this.link = link;
    try {
      link.subscribe(this.names.controlAll, (m) => this.control(m));
      link.subscribe(this.controlSelf, (m) => this.control(m));
      if (this.allMode) link.subscribe(this.names.everything, (m) => this.deliver(m));
      await link.flush();
      await link.settle();
    } catch (err) {
      await this.close();
      throw new Error(`nats at ${this.target.servers.join(',')} did not confirm the subscriptions: ${String(err)}`, { cause: err });
    }
  }

  async subscribe(channel: string): Promise<void> {
    const link = this.live(false);
    if (this.allMode) {
      // Like a subscription, it takes effect once the server has answered:
      // what it sent before is not for this subscriber. In a cluster that
      // includes what other servers sent it over their routes a moment
      // earlier (seen in CI: a publication made before the subscribe
      // arrived after the flush), hence the same settling wait.
      this.wanted.add(channel);
      await link.flush();
      await link.settle();
      if (this.wanted.has(channel)) this.local.add(channel);
      return;
    }
    if (this.subscriptions.has(channel)) return link.flush();
    // Wanted even while down: nats.js sends it again on reconnection.
    this.subscriptions.set(channel, link.subscribe(this.names.channel(channel), (m) => this.deliver(m)));
    await link.flush();
    await link.settle();
  }

  async unsubscribe(channel: string): Promise<void> {
    this.wanted.delete(channel);
    this.local.delete(channel);
    this.order.forget(channel);
    const sub = this.subscriptions.get(channel);
    if (!sub) return;
    this.subscriptions.delete(channel);
    // Stops delivery at once; the server forgets it when it reads the UNSUB.
    if (this.state !== 'closed') sub.unsubscribe();
  }

  async publish(pub: PublishInput, history: HistoryPolicy | null, route: Route = TO_SUBSCRIBERS, once?: Idempotency): Promise<PublishReceipt> {
    if (once) return this.ledger.once(pub.channel, once, () => this.publishNow(pub, history, route));
    return this.publishNow(pub, history, route);
  }

  private async publishNow(pub: PublishInput, history: HistoryPolicy | null, route: Route): Promise<PublishResult> {
    if (route.to === 'nodes') throw new Error(`publish to ${route.to}: ${NOT_SUPPORTED}`);
    if (route.to === 'all' && !this.allMode) {
      throw new Error('publish to all nodes: this NATS broker runs in interest mode (create it with the routes of broadcast routing)');
    }
    const toAll = route.to === 'all';
    const stored = encodeStored(pub);
    const ts = Number.isFinite(pub.ts) ? Math.trunc(pub.ts) : Date.now();
    if (history && history.size > 0) return this.histories.publish(pub.channel, stored, ts, history, toAll);
    const link = this.live();
    link.nc.publish(this.names.channel(pub.channel), stored, { headers: publicationHeaders(ts, null, toAll) });
    await link.flush();
    return {};
  }

  async sendControl(to: string | null, payload: string): Promise<void> {
    const link = this.live();
    link.nc.publish(to === null ? this.names.controlAll : this.names.controlOf(to), payload);
    await link.flush();
  }

  // ---- internals -------------------------------------------------------------

  /** The link, if started and (unless `up` is false) reachable now; else throws a `BrokerError`. */
  private live(up = true): NatsLink {
    const link = this.link;
    if (!link || this.state === 'closed' || this.closing) throw this.closing ? closedError() : notStartedError();
    if (up) link.check();
    return link;
  }

  private readyChanged(up: boolean): void {
    if (this.state !== 'started') return;
    // All mode: a subscribe that failed while down still counts, as a NATS subscription would.
    if (up && this.allMode) for (const channel of this.wanted) this.local.add(channel);
    this.calls.readyChange(up);
  }

  private control(m: Msg): void {
    if (this.calls.attached) this.calls.control(m.string());
  }

  private deliver(m: Msg): void {
    if (!this.calls.attached) return;
    try {
      const body = m.string();
      const pub = decodeDelivered(body, m.headers);
      if (!pub) {
        // An epoch marker is no publication; anything else undecodable is a fault.
        if (!isMarker(m.headers)) this.fault(new Error(`undecodable message on ${m.subject}: ${body.slice(0, 100)}`), 'subscription');
        return;
      }
      if (!this.names.carries(m.subject, pub.channel)) {
        this.fault(new Error(`message for ${pub.channel} on ${m.subject}`), 'subscription');
        return;
      }
      if (this.allMode && m.headers?.get(H_ROUTE) !== 'all' && !this.local.has(pub.channel)) return;
      const stream = m.headers?.get(H_STREAM);
      const seq = Number(m.headers?.get(H_SEQUENCE));
      if (stream && Number.isSafeInteger(seq) && pub.offset !== undefined && pub.epoch !== undefined) {
        this.histories.observe(stream, pub.channel, seq, { offset: pub.offset, epoch: pub.epoch });
      }
      this.order.push(pub);
    } catch (err) {
      this.fault(err, 'message handler');
    }
  }

  protected async release(): Promise<void> {
    this.order.close();
    this.subscriptions.clear();
    this.local.clear();
    this.wanted.clear();
    await this.link?.close();
  }
}
