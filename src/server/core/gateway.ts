/**
 * The node's core: its sessions, and fanning publications out to them. It
 * talks to the broker only through the `Broker` seam; what the node holds
 * at the broker (interest), presence, continuity (recovery, gap and outage
 * catch-up), publishing, the heartbeat and redirects each live in a file of
 * their own.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import {
  CloseCode,
  encodeMessage,
  ErrorCode,
  personalChannel,
  SwitchboardError,
  type Publication,
  type ServerFrame,
  type StreamPosition,
  type SubscribeResult,
} from '../../protocol/index.js';
import type { Broker, BrokerPublication, PresenceEntry, PublishReceipt } from '../../brokers/broker.js';
import type { HistoryPage, HistoryQuery } from '../../brokers/history.js';
import type { Metrics } from '../metrics.js';
import { detectionMs, type NodeOptions } from '../options.js';
import type { RoutingStrategy } from '../routing/strategies.js';
import { ALONE, type ClusterView } from './cluster-view.js';
import { Continuity, type From, type Read } from './continuity.js';
import { Heartbeat, type Refresher } from './heartbeat.js';
import { Interest } from './interest.js';
import { Members } from './members.js';
import { Namespaces } from './namespaces.js';
import { Presence } from './presence.js';
import { Publisher, type PublishOptions } from './publisher.js';
import { Redirects } from './redirects.js';
import { Session, type Outgoing, type SessionInit } from './session.js';

/** A session to open: who it is (as `SessionInit` says), and where its personal channel resumes (`?since=&epoch=`). */
export type OpenSession = Pick<SessionInit, 'user' | 'device' | 'grants' | 'expires' | 'meta' | 'codec' | 'transport'> & { since?: StreamPosition };

export class Gateway {
  readonly namespaces: Namespaces;
  readonly sessions = new Set<Session>();
  /** Which channels this node holds, and their broker subscriptions and registry entries. */
  private readonly interest: Interest;
  private readonly presenceEntries: Presence;
  /** Join and leave frames of `joinLeave` channels. */
  readonly members: Members;
  private readonly continuity: Continuity;
  private readonly publisher: Publisher;
  private readonly heartbeat: Heartbeat;
  private readonly redirects: Redirects;
  private subscribed = 0;
  /** Shared by every session (closures per session would cost memory on each of 100k connections). */
  private readonly onSessionClosed = (s: Session): void => this.forget(s);
  private readonly onFrameOut = (type: ServerFrame['type']): void => this.metrics.framesOut.inc({ type });

  constructor(
    readonly nodeId: string,
    private readonly options: NodeOptions,
    readonly broker: Broker,
    readonly routing: RoutingStrategy,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    cluster: ClusterView = ALONE,
  ) {
    this.namespaces = new Namespaces(options);
    this.interest = new Interest(broker, routing, detectionMs(options), log);
    this.members = new Members(this.interest, cluster.announce?.bind(cluster), (channel) => broker.store.presence(channel), log);
    this.presenceEntries = new Presence(nodeId, broker, this.namespaces, this.interest, (node) => cluster.isAlive(node), log, this.members);
    this.continuity = new Continuity(broker, this.namespaces, this.interest, metrics, log, (pub) => this.deliverLocal(pub), options.limits.maxBufferedBytes / 2);
    this.publisher = new Publisher(broker, this.namespaces, routing, options, metrics, log);
    this.heartbeat = new Heartbeat(this.sessions, options.ping, options.pongTimeout);
    this.redirects = new Redirects(nodeId, routing, options.hashringRedirect, (node) => cluster.urlOf(node), metrics);
  }

  /** Extend sessions before they expire: the heartbeat sweep hands it those whose `refreshAt` has come. */
  useRefresher(refresher: Refresher): void {
    this.heartbeat.refresher = refresher;
  }

  /** Connect the broker; `onControl` receives node-to-node messages. */
  async start(onControl: (payload: string) => void = () => undefined): Promise<void> {
    await this.broker.start(this.nodeId, {
      onPublication: (pub) => this.dispatch(pub),
      onReadyChange: (ready) => this.brokerReadiness(ready),
      onControl,
    });
    this.heartbeat.start();
    this.interest.rerouted();
  }

  async close(): Promise<void> {
    this.publisher.close();
    this.heartbeat.stop();
    this.interest.close();
    await this.continuity.close();
    await this.broker.close();
  }

  /** Subscriptions of every session, personal channels aside: counted as they change, not summed over the sessions at each heartbeat. */
  get subscriptionCount(): number {
    return this.subscribed;
  }

  /**
   * Open a session after its upgrade. Its first queued task subscribes the
   * personal channel (recovering from `since`) and sends `welcome`, so frames
   * the client sends meanwhile are handled after it.
   */
  open(init: OpenSession): Session {
    // Field by field: spreading the caller's object here cost some 1.5 kB of RSS (not heap) per idle connection (docs/benchmarks.md).
    const { user, device, grants, expires, meta, codec, transport } = init;
    const { limits } = this.options;
    const session = new Session({ id: randomUUID(), user, device, grants, expires, meta, codec, transport, limits, now: Date.now(), onClosed: this.onSessionClosed, onFrameOut: this.onFrameOut });
    this.sessions.add(session);
    this.metrics.connections.inc();
    const channel = personalChannel(init.user);
    if (this.redirects.apply(session)) return session;
    session.enqueue(async () => {
      try {
        const from = init.since ?? { resume: session.device };
        await this.subscribe(session, channel, from, (result) => session.welcome(this.nodeId, channel, result, this.options.ping));
      } catch (err) {
        this.log.warn({ err, user: init.user }, 'could not open session');
        session.disconnect(CloseCode.GoingAway, 'broker unavailable', true);
      }
    });
    return session;
  }

  /** An `ack` frame (see `Continuity.ack`). */
  ack(session: Session, channel: string, offset: number): void {
    this.continuity.ack(session, channel, offset);
  }

  /**
   * Subscribe `session` to `channel`, recovering what it missed `from`
   * there ('start': everything retained; `resume`: after what its device
   * acknowledged). `respond` is called with the result at the moment it
   * must be sent: before any live message that follows it. Resolves with
   * the bytes of history it replayed.
   */
  async subscribe(session: Session, channel: string, from: From, respond: (result: SubscribeResult) => void): Promise<number> {
    session.begin(channel);
    this.metrics.subscriptions.inc();
    if (channel !== personalChannel(session.user)) this.subscribed++;
    this.interest.join(session, channel);
    try {
      // The presence entry goes in the write of the history read (of the subscription, when the
      // channel keeps no history): one write, not two, of which a broker client may hold the second
      // until the first is answered (ioredis's auto-pipelining keeps one write in flight).
      let presence: Promise<void> | undefined;
      const addPresence = (): void => {
        if (presence) return;
        presence = this.presenceEntries.add(session, channel) ?? Promise.resolve();
        presence.catch(() => undefined);
      };
      const reads = this.continuity.reads(channel);
      if (!reads) addPresence();
      // History must be read once the node receives the channel, or a publication in between is
      // lost: a subscriber whose channel is held reads in this turn, the others in the round trip
      // of the channel's subscription where the broker can tell (`Interest.readEnsured`).
      const read = (): Promise<Read> => {
        addPresence();
        return this.continuity.read(channel, from);
      };
      const { since, page } = await (this.interest.ensured(channel) ? read() : this.interest.readEnsured(channel, read, reads));
      await presence;
      // Closed meanwhile: `forget` may have run before the presence entry existed, so remove it here.
      if (!session.channels.has(channel) && this.presenceEntries.tracks(channel)) {
        await this.presenceEntries.removeNow(session, channel);
        return 0;
      }
      const { result, rest, bytes } = this.continuity.recover(channel, since, page);
      const top = rest.at(-1)?.offset ?? result.offset ?? 0;
      await session.ready(channel, { offset: top, epoch: result.epoch }, () => respond(result), rest);
      return bytes;
    } catch (err) {
      if (session.channels.has(channel)) this.drop(session, channel);
      throw err instanceof SwitchboardError ? err : new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable');
    }
  }

  /** Unsubscribe `session` from `channel`; settles once its presence entry is gone (so its `leave` is logged before anything the client does next). */
  async unsubscribe(session: Session, channel: string): Promise<void> {
    if (session.channels.has(channel)) await this.drop(session, channel);
  }

  /** Publish through the broker (see `Publisher.publish`). */
  publish(channel: string, data: unknown, options?: PublishOptions): Promise<PublishReceipt> {
    return this.publisher.publish(channel, data, options);
  }

  /** The presence entries of `channel` across the cluster. */
  presence(channel: string): Promise<PresenceEntry[]> {
    return this.presenceEntries.list(channel);
  }

  /** A page of `channel`'s history (the server API's read). */
  history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    return this.continuity.history(channel, query);
  }

  /** Sessions of `user` on this node. */
  sessionsOf(user: string): Session[] {
    return [...(this.interest.subscribers(personalChannel(user)) ?? [])];
  }

  /** A publication from the broker: delivered now, unless continuity holds it back. */
  private dispatch(pub: BrokerPublication): void {
    if (!this.continuity.takes(pub)) this.deliverLocal(pub);
  }

  /** Fan a publication out to local subscribers: encoded once, the same bytes written to each. */
  private deliverLocal(pub: BrokerPublication): void {
    const subscribers = this.interest.subscribersAsKept(pub.channel);
    if (!subscribers) {
      this.metrics.brokerReceived.inc({ use: 'unused' });
      return;
    }
    this.metrics.brokerReceived.inc({ use: 'used' });
    const { ts, ...wire } = pub;
    // Encoded once for every subscriber; transports add their framing to it once, too.
    const message: Outgoing = { pub: wire as Publication, text: Buffer.from(encodeMessage(wire as Publication)) };
    let written = 0;
    const now = Date.now();
    if (subscribers instanceof Session) {
      if (subscribers.deliverMessage(message, now)) written++;
    } else for (const s of subscribers) if (s.deliverMessage(message, now)) written++;
    if (written > 0) {
      this.metrics.delivered.inc(written);
      this.metrics.framesOut.inc({ type: 'message' }, written);
      this.metrics.latency.observe((Date.now() - ts) / 1000);
    }
  }

  /** Drop `session`'s subscription of `channel` here; the removal of its presence entry, when it has one. */
  private drop(session: Session, channel: string): Promise<void> | undefined {
    session.channels.delete(channel);
    this.metrics.subscriptions.dec();
    if (channel !== personalChannel(session.user)) this.subscribed--;
    if (this.interest.leave(session, channel)) {
      this.continuity.forget(channel);
      this.members.release(channel);
    }
    return this.presenceEntries.remove(session, channel);
  }

  /**
   * The cluster's membership changed (hash-ring routing follows it). While
   * the ring settles every personal channel held here is registered; with
   * `--hashring-redirect`, sessions of users another node now owns are
   * moved there (4102).
   */
  membersChanged(members: string[]): void {
    if (!this.routing.membersChanged(members)) return;
    this.log.info({ members }, 'routing changed with the cluster membership');
    this.interest.rerouted();
    if (this.redirects.enabled) for (const s of [...this.sessions]) this.redirects.apply(s);
  }

  /**
   * Another node declared this one dead and dropped its entries (it stalled,
   * or lost the broker for longer than the detection time).
   */
  swept(): void {
    // Otherwise `brokerReadiness` restores everything when the broker returns.
    if (this.broker.ready) this.restore();
  }

  private brokerReadiness(ready: boolean): void {
    this.log.warn({ ready }, ready ? 'broker reachable again' : 'broker unreachable');
    if (!ready) this.continuity.brokerLost();
    else if (this.continuity.brokerBack()) this.restore();
  }

  /**
   * Put back what this node keeps at the broker, which may be gone (Redis
   * lost it, or a survivor dropped this node's entries): registry entries
   * before the catch-up reads history, so no publication falls in between;
   * presence entries, with the removals that failed meanwhile.
   */
  private restore(): void {
    void this.interest.reassert().then(() => this.continuity.catchUp());
    void this.presenceEntries.reassert();
  }

  private forget(session: Session): void {
    if (!this.sessions.delete(session)) return;
    this.metrics.connections.dec();
    if (session.closeCode !== undefined) this.metrics.disconnects.inc({ code: String(session.closeCode) });
    if (session.closeCode === CloseCode.RateLimited || session.closeCode === CloseCode.PolicyViolation) {
      // Otherwise only the client would know which limit it broke.
      const { id, user, closeCode: code, closeReason: reason } = session;
      this.log.info({ session: id, user, code, reason }, 'closed a client that broke a limit');
    }
    // The personal channel last: a user's `leave` events are logged before its `offline`.
    const personal = personalChannel(session.user);
    for (const channel of [...session.channels.keys()]) if (channel !== personal) this.drop(session, channel);
    if (session.channels.has(personal)) this.drop(session, personal);
  }
}
