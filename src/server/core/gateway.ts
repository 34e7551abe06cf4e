/**
 * The node's core: which local sessions hold which channels, subscribing and
 * recovering through the broker, publishing, and fanning publications out to
 * local sessions. It talks to the broker only through the `Broker` seam.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import {
  CloseCode,
  encodeMessage,
  ErrorCode,
  personalChannel,
  personalChannelUser,
  SwitchboardError,
  type Publication,
  type PublishResult,
  type ServerFrame,
  type StreamPosition,
  type SubscribeResult,
} from '../../protocol/index.js';
import type { Broker, BrokerPublication, Idempotency, PresenceEntry, PresenceItem, PublishReceipt } from '../../brokers/broker.js';
import { covers } from '../../brokers/history.js';
import type { Metrics } from '../metrics.js';
import type { NodeOptions } from '../options.js';
import { backoffDelay } from '../../shared/backoff.js';
import { HashRingRouting, type RoutingStrategy } from '../routing/strategies.js';
import { AckWriter } from './acks.js';
import { Namespaces } from './namespaces.js';
import type { WireCodec } from '../../protocol/msgpack.js';
import { Session, type Outgoing, type Transport } from './session.js';

export interface OpenSession {
  user: string;
  grants: string[];
  transport: Transport;
  /** The connection's codec, from its subprotocol. Default `json`. */
  codec?: WireCodec;
  /** `?since=&epoch=` of the personal channel. */
  since?: StreamPosition;
  /** `?device=`: whose acknowledged position a connection without `since` resumes from ('' for the user's). */
  device?: string;
}

/** A personal channel read from the start of its retained history: a reader that never acknowledged anything. */
type Since = StreamPosition | 'start' | undefined;

/** Backoff between publish attempts on a failing broker: full jitter (`backoffDelay`) in [0, min(MAX, MIN·2^n)). */
const RETRY_MIN_MS = 25;
const RETRY_MAX_MS = 1000;

/** Live publications held per channel while it is caught up after a broker outage. */
const MAX_HELD = 10_000;

export class Gateway {
  readonly namespaces: Namespaces;
  readonly sessions = new Set<Session>();
  /** Local subscribers by channel: the node's interest. */
  private readonly local = new Map<string, Set<Session>>();
  /** The broker subscription of each local channel (interest routing), confirmed or still pending: every subscriber waits for it. */
  private readonly subscribing = new Map<string, Promise<void>>();
  /** The registry entry of each local channel that has one (registry, hash-ring routing), confirmed or pending. */
  private readonly registering = new Map<string, Promise<void>>();
  /** The newest offset this node has dispatched per local channel with history: where a catch-up starts. */
  private readonly positions = new Map<string, { offset: number; epoch: string }>();
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private presenceTimer: ReturnType<typeof setInterval> | undefined;
  /** Whether the broker was unreachable since the last catch-up. */
  private brokerWasDown = false;
  /**
   * While the broker is down and until each channel's catch-up is done: the
   * live publications of the channels being caught up, held back so that
   * none overtakes the older ones the catch-up reads from history.
   */
  private readonly held = new Map<string, BrokerPublication[]>();
  /** The catch-up of each channel under way: one at a time per channel. */
  private readonly catching = new Map<string, Promise<void>>();
  /** Acknowledged personal-channel positions on their way to the broker. */
  private readonly acks: AckWriter;
  private closing = false;
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
    /** The public WebSocket URL of a live node (hash-ring redirects). */
    private readonly urlOf: (node: string) => string | undefined = () => undefined,
  ) {
    this.namespaces = new Namespaces(options);
    this.acks = new AckWriter(broker, metrics, log);
  }

  /** Connect the broker; `onControl` receives node-to-node messages. */
  async start(onControl: (payload: string) => void = () => undefined): Promise<void> {
    await this.broker.start(this.nodeId, {
      onPublication: (pub) => this.dispatch(pub),
      onReadyChange: (ready) => this.brokerReadiness(ready),
      onControl,
    });
    const everyMs = Math.max(100, Math.min(1000, (this.options.ping * 1000) / 4));
    this.heartbeat = setInterval(() => this.beat(Date.now()), everyMs);
    this.heartbeat.unref();
    this.presenceTimer = setInterval(() => void this.refresh(), (this.options.presenceTtl * 1000) / 3);
    this.presenceTimer.unref();
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.presenceTimer) clearInterval(this.presenceTimer);
    // The positions acknowledged last, before the broker goes (best effort: a write that fails is re-delivered later).
    if (this.broker.ready) await this.acks.flush();
    this.acks.stop();
    await this.broker.close();
  }

  get subscriptionCount(): number {
    let n = 0;
    for (const s of this.sessions) n += s.subscriptionCount;
    return n;
  }

  /**
   * Open a session after its upgrade. Its first queued task subscribes the
   * personal channel (recovering from `since`) and sends `welcome`, so frames
   * the client sends meanwhile are handled after it.
   */
  open(init: OpenSession): Session {
    const session = new Session({
      id: randomUUID(),
      user: init.user,
      ...(init.device ? { device: init.device } : {}),
      grants: init.grants,
      ...(init.codec ? { codec: init.codec } : {}),
      transport: init.transport,
      limits: this.options.limits,
      now: Date.now(),
      onClosed: this.onSessionClosed,
      onFrameOut: this.onFrameOut,
    });
    this.sessions.add(session);
    this.metrics.connections.inc();
    const channel = personalChannel(init.user);
    if (this.redirect(session)) return session;
    session.enqueue(async () => {
      try {
        // Read while the channel's subscription is set up: one broker round trip less per connection.
        const since = init.since ?? this.resumePoint(channel, session.device);
        await this.subscribe(session, channel, since, (result) =>
          session.send({
            type: 'welcome',
            session: session.id,
            node: this.nodeId,
            user: init.user,
            channel,
            offset: result.offset ?? 0,
            epoch: result.epoch ?? '',
            recovered: result.recovered,
            messages: result.messages,
            ping: this.options.ping,
          }),
        );
      } catch (err) {
        this.log.warn({ err, user: init.user }, 'could not open session');
        session.disconnect(CloseCode.GoingAway, 'broker unavailable', true);
      }
    });
    return session;
  }

  /**
   * Where a connection without `?since` starts its personal channel
   * (offline delivery): after the position its device (or user)
   * acknowledged, else at the start of what history retains.
   */
  private async resumePoint(channel: string, device: string): Promise<Since> {
    if (!this.namespaces.of(channel).history) return undefined;
    return (await this.broker.loadAck(channel, device)) ?? 'start';
  }

  /**
   * An `ack` frame: keep the position of the personal channel for the
   * session's device. Acks of other channels keep nothing (their clients
   * resubscribe with `since`), nor do acks past what this session was sent
   * (left from an earlier epoch, or bogus).
   */
  ack(session: Session, channel: string, offset: number): void {
    if (channel !== personalChannel(session.user)) return;
    const history = this.namespaces.of(channel).history;
    const delivered = session.delivered(channel);
    if (!history || !delivered || offset > delivered.offset) return;
    this.acks.note(channel, session.device, { offset, epoch: delivered.epoch }, history.ttlMs);
  }

  /**
   * Subscribe `session` to `channel`, recovering what it missed since
   * `since` ('start': everything retained). `respond` is called with the
   * result at the moment it must be sent: before any live message that
   * follows it.
   */
  async subscribe(
    session: Session,
    channel: string,
    from: Since | Promise<Since>,
    respond: (result: SubscribeResult) => void,
  ): Promise<void> {
    const policy = this.namespaces.of(channel);
    session.begin(channel);
    this.metrics.subscriptions.inc();
    let subscribers = this.local.get(channel);
    if (!subscribers) this.local.set(channel, (subscribers = new Set()));
    subscribers.add(session);
    try {
      // Not only the first subscriber waits: history must be read after the
      // node receives the channel, or a publication in between is lost.
      const [, since] = await Promise.all([this.ensureInterest(channel), from]);
      // The presence entry and the history read go to the broker together (one round trip).
      const history = policy.history;
      const [, page] = await Promise.all([
        tracksPresence(policy.presence, channel)
          ? this.broker.presenceAdd([{ channel, entry: this.presenceEntry(session) }], this.presenceTtlMs)
          : undefined,
        history
          ? this.metrics.brokerCall('history', () =>
              this.broker.history(
                channel,
                since === 'start' ? { since: 0, limit: history.size } : since ? { since: since.offset, limit: history.size } : { limit: 0 },
                history,
              ),
            )
          : undefined,
      ]);
      // Closed meanwhile: `forget` may have run before the presence entry existed, so remove it here.
      if (!session.channels.has(channel) && tracksPresence(policy.presence, channel)) {
        await this.broker.presenceRemove([{ channel, session: session.id }]);
        return;
      }
      let result: SubscribeResult = { channel, recovered: true, messages: [] };
      /** Recovered messages past what one reply may carry: sent after it, paced by the socket. */
      let rest: Publication[] = [];
      if (history && page) {
        const recovered =
          !since ||
          since === 'start' ||
          covers(page, since) ||
          // A reader that has seen nothing misses nothing while history still starts at 1, whatever the epoch.
          (since.offset === 0 && page.earliest <= 1);
        result = {
          channel,
          offset: page.offset,
          epoch: page.epoch,
          recovered,
          messages: since && recovered ? page.messages : [],
        };
        if (since && since !== 'start') this.metrics.recoveries.inc({ result: recovered ? 'recovered' : 'failed' });
        if (!this.positions.has(channel)) this.positions.set(channel, { offset: page.offset, epoch: page.epoch });
        const split = splitReplay(result.messages, this.options.limits.maxBufferedBytes / 2);
        if (split.rest.length > 0) {
          // The reply's position is where what it carries ends; the rest follows as `message` frames.
          result = { ...result, messages: split.inline, offset: split.inline.at(-1)?.offset ?? split.rest[0]!.offset! - 1 };
          rest = split.rest;
        }
      } else if (since && since !== 'start') {
        result.recovered = false;
      }
      const top = rest.at(-1)?.offset ?? result.offset ?? 0;
      await session.ready(channel, { offset: top, epoch: result.epoch }, () => respond(result), rest);
    } catch (err) {
      if (session.channels.has(channel)) this.drop(session, channel);
      throw err instanceof SwitchboardError ? err : new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable');
    }
  }

  /**
   * What the routing needs before this node can count on receiving
   * `channel`: a broker subscription, a registry entry, or nothing.
   */
  private ensureInterest(channel: string): Promise<void> {
    const subscribe = this.routing.subscribes(channel);
    const register = this.routing.registers(channel);
    if (subscribe && register) {
      return Promise.all([this.subscribeOnce(channel), this.registerOnce([channel])]).then(() => undefined);
    }
    if (subscribe) return this.subscribeOnce(channel);
    if (register) return this.registerOnce([channel]);
    return Promise.resolve();
  }

  private subscribeOnce(channel: string): Promise<void> {
    let pending = this.subscribing.get(channel);
    if (!pending) {
      const p = this.broker.subscribe(channel);
      this.subscribing.set(channel, p);
      // A failed subscription is tried afresh by the next subscriber.
      p.catch(() => {
        if (this.subscribing.get(channel) === p) this.subscribing.delete(channel);
      });
      pending = p;
    }
    return pending;
  }

  /** Register the channels not registered (or being registered) yet, in one broker call. */
  private registerOnce(channels: string[]): Promise<void> {
    const fresh = channels.filter((c) => !this.registering.has(c));
    const waits = channels.filter((c) => this.registering.has(c)).map((c) => this.registering.get(c)!);
    if (fresh.length > 0) {
      const p = this.broker.register(fresh, this.registryTtlMs);
      for (const c of fresh) this.registering.set(c, p);
      // A failed registration is tried afresh by the next subscriber or refresh.
      p.catch(() => {
        for (const c of fresh) if (this.registering.get(c) === p) this.registering.delete(c);
      });
      waits.push(p);
    }
    return Promise.all(waits).then(() => undefined);
  }

  async unsubscribe(session: Session, channel: string): Promise<void> {
    if (session.channels.has(channel)) this.drop(session, channel);
  }

  /**
   * Publish through the broker. With `key`, at most once per key and
   * channel within the idempotency window, and every failure is retried
   * until the publish deadline (a retry cannot publish twice). Without a
   * key only an unreachable broker is waited for: a failed attempt may have
   * been stored, so it is not repeated. A result means the broker stored it.
   */
  async publish(channel: string, data: unknown, from?: string, key?: string): Promise<PublishReceipt> {
    const policy = this.namespaces.of(channel);
    const pub: Omit<BrokerPublication, 'offset' | 'epoch'> =
      from === undefined ? { channel, data, ts: Date.now() } : { channel, data, from, ts: Date.now() };
    const once: Idempotency | undefined = key === undefined ? undefined : { key, windowMs: this.options.idempotencyWindow * 1000 };
    const deadline = Date.now() + this.options.publishDeadline;
    for (let attempt = 0; ; attempt++) {
      let failure: unknown;
      if (this.broker.ready) {
        try {
          const result = await this.metrics.brokerCall('publish', () => this.broker.publish(pub, policy.history, this.routing.route(channel), once));
          if (result.duplicate) this.metrics.idempotentReplays.inc();
          else this.metrics.published.inc({ source: from === undefined ? 'api' : 'client' });
          return result;
        } catch (err) {
          if (!once) {
            this.log.warn({ err, channel }, 'publish failed');
            throw new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable: the message was not accepted (send it with an idempotency key to have it retried safely)');
          }
          failure = err;
        }
      }
      const left = deadline - Date.now();
      if (this.closing || left <= 0) {
        this.log.warn({ err: failure, channel, attempts: attempt + 1 }, 'publish failed until its deadline');
        throw new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable: the message was not accepted');
      }
      this.metrics.publishRetries.inc();
      const wait = backoffDelay(attempt, RETRY_MIN_MS, RETRY_MAX_MS);
      // The last attempt comes at the deadline.
      await new Promise((r) => setTimeout(r, Math.min(wait, left)));
    }
  }

  async presence(channel: string): Promise<PresenceEntry[]> {
    try {
      return await this.broker.presence(channel);
    } catch {
      throw new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable');
    }
  }

  /** Sessions of `user` on this node. */
  sessionsOf(user: string): Session[] {
    const set = this.local.get(personalChannel(user));
    return set ? [...set] : [];
  }

  /** Fan a publication out to local subscribers: encoded once, the same bytes written to each. */
  private dispatch(pub: BrokerPublication): void {
    const held = this.held.get(pub.channel);
    if (held && pub.offset !== undefined) {
      if (held.length < MAX_HELD) {
        held.push(pub);
        return;
      }
      // Too much to hold: these sessions reconnect and recover instead.
      this.held.delete(pub.channel);
      this.metrics.recoveries.inc({ result: 'failed' });
      for (const s of [...(this.local.get(pub.channel) ?? [])]) {
        s.disconnect(CloseCode.StateLost, 'messages may have been lost: reconnect to recover', true);
      }
      return;
    }
    if (pub.offset !== undefined && pub.epoch !== undefined && this.local.has(pub.channel)) {
      const pos = this.positions.get(pub.channel);
      if (pos && pos.epoch === pub.epoch && pub.offset > pos.offset + 1) {
        // A node with subscribers of a channel receives every one of its
        // publications, so a gap means one was lost on the way (a broker
        // hiccup): fill it from history before going on.
        this.metrics.gaps.inc();
        this.log.warn({ channel: pub.channel, after: pos.offset, got: pub.offset }, 'gap in a channel: filling it from history');
        this.held.set(pub.channel, [pub]);
        void this.catchUpChannel(pub.channel);
        return;
      }
    }
    this.deliverLocal(pub);
  }

  private deliverLocal(pub: BrokerPublication): void {
    const subscribers = this.local.get(pub.channel);
    if (!subscribers || subscribers.size === 0) {
      this.metrics.brokerReceived.inc({ use: 'unused' });
      return;
    }
    this.metrics.brokerReceived.inc({ use: 'used' });
    if (pub.offset !== undefined && pub.epoch !== undefined) {
      const pos = this.positions.get(pub.channel);
      // Moved in place: an object per message, kept until the channel's next
      // one, would outlive young-generation GCs and be collected by the
      // slow old-generation ones.
      if (pos && pos.epoch === pub.epoch) {
        if (pos.offset < pub.offset) pos.offset = pub.offset;
      } else {
        this.positions.set(pub.channel, { offset: pub.offset, epoch: pub.epoch });
      }
    }
    const { ts, ...wire } = pub;
    // Encoded once for every subscriber; transports add their framing to it once, too.
    const message: Outgoing = { pub: wire as Publication, text: Buffer.from(encodeMessage(wire as Publication)) };
    let written = 0;
    const now = Date.now();
    for (const s of subscribers) if (s.deliverMessage(message, now)) written++;
    if (written > 0) {
      this.metrics.delivered.inc(written);
      this.metrics.framesOut.inc({ type: 'message' }, written);
      this.metrics.latency.observe((Date.now() - ts) / 1000);
    }
  }

  /** Send `ping` to quiet sessions; close the ones that did not answer the last one in time. */
  private beat(now: number): void {
    const quietMs = this.options.ping * 1000;
    const timeoutMs = this.options.pongTimeout * 1000;
    for (const s of this.sessions) {
      if (s.pingSentAt !== undefined) {
        if (now - s.pingSentAt > timeoutMs) s.disconnect(CloseCode.HeartbeatTimeout, 'heartbeat timeout', true);
      } else if (now - s.lastSentAt >= quietMs) {
        s.send({ type: 'ping' });
        s.pingSentAt = now;
      }
    }
  }

  private drop(session: Session, channel: string): void {
    session.channels.delete(channel);
    this.metrics.subscriptions.dec();
    const subscribers = this.local.get(channel);
    if (subscribers?.delete(session) && subscribers.size === 0) {
      this.local.delete(channel);
      this.positions.delete(channel);
      if (this.subscribing.delete(channel)) {
        this.broker.unsubscribe(channel).catch((err: unknown) => this.log.warn({ err, channel }, 'unsubscribe failed'));
      }
      if (this.registering.delete(channel)) {
        // If this fails (broker down), the entry expires on its own: nobody refreshes it.
        this.broker.unregister([channel]).catch((err: unknown) => this.log.debug({ err, channel }, 'unregister failed'));
      }
    }
    if (tracksPresence(this.namespaces.of(channel).presence, channel)) {
      // If this fails (broker down), the entry expires on its own: nobody refreshes it.
      this.broker
        .presenceRemove([{ channel, session: session.id }])
        .catch((err: unknown) => this.log.debug({ err, channel }, 'presence remove failed'));
    }
  }

  private get presenceTtlMs(): number {
    return this.options.presenceTtl * 1000;
  }

  /** Registry entries live as long as presence entries, and are refreshed with them. */
  private get registryTtlMs(): number {
    return this.options.presenceTtl * 1000;
  }

  /** The periodic refresh: presence entries, then registry entries, before they expire. */
  private async refresh(): Promise<void> {
    await Promise.all([this.refreshPresence(), this.refreshRegistry()]);
  }

  /**
   * Re-register every channel that needs an entry, and drop the entries the
   * routing no longer needs (a hash ring that settled with this node as owner).
   */
  private async refreshRegistry(): Promise<void> {
    if (!this.broker.ready) return;
    const keep: string[] = [];
    const drop: string[] = [];
    for (const channel of this.local.keys()) {
      if (this.routing.registers(channel)) keep.push(channel);
      else if (this.registering.has(channel)) drop.push(channel);
    }
    for (const c of drop) this.registering.delete(c);
    try {
      for (let i = 0; i < keep.length; i += 1000) {
        // A channel whose last subscriber left meanwhile is not registered again.
        const part = keep.slice(i, i + 1000).filter((c) => this.local.has(c));
        if (part.length === 0) continue;
        const p = this.broker.register(part, this.registryTtlMs);
        for (const c of part) this.registering.set(c, p);
        await p;
      }
      if (drop.length > 0) await this.broker.unregister(drop);
    } catch (err) {
      this.log.warn({ err }, 'registry refresh failed');
    }
  }

  /**
   * The cluster's membership changed (hash-ring routing follows it). While
   * the ring settles every personal channel held here is registered; with
   * `--hashring-redirect`, sessions of users another node now owns are
   * moved there (4102).
   */
  membersChanged(members: string[]): void {
    const routing = this.routing;
    if (!(routing instanceof HashRingRouting) || !routing.update(members)) return;
    this.log.info({ nodes: routing.current.nodes }, 'hash ring changed');
    const needed = [...this.local.keys()].filter((c) => routing.registers(c));
    if (needed.length > 0) {
      this.registerOnce(needed).catch((err: unknown) => this.log.warn({ err }, 'registering after a ring change failed'));
    }
    if (this.options.hashringRedirect) for (const s of [...this.sessions]) this.redirect(s);
  }

  /**
   * With `--hashring-redirect`: close a session whose user another node
   * owns, with 4102 and the owner's URL. True when it was closed.
   */
  private redirect(session: Session): boolean {
    const routing = this.routing;
    if (!this.options.hashringRedirect || !(routing instanceof HashRingRouting)) return false;
    const owner = routing.owner(session.user);
    if (owner === this.nodeId) return false;
    const url = this.urlOf(owner);
    if (url === undefined) return false;
    this.metrics.moved.inc();
    session.disconnect(CloseCode.Moved, `moved: user ${session.user} belongs to node ${owner}`, true, url);
    return true;
  }

  private presenceEntry(session: Session): PresenceEntry {
    return { user: session.user, session: session.id, node: this.nodeId };
  }

  /** Re-add every local presence entry before it expires, in batches. */
  private async refreshPresence(): Promise<void> {
    if (!this.broker.ready) return;
    let batch: PresenceItem[] = [];
    const flush = async () => {
      const items = batch;
      batch = [];
      await this.broker.presenceAdd(items, this.presenceTtlMs);
    };
    try {
      for (const [channel, sessions] of this.local) {
        if (!tracksPresence(this.namespaces.of(channel).presence, channel)) continue;
        for (const s of sessions) {
          batch.push({ channel, entry: this.presenceEntry(s) });
          if (batch.length >= 1000) await flush();
        }
      }
      if (batch.length > 0) await flush();
    } catch (err) {
      this.log.warn({ err }, 'presence refresh failed');
    }
  }

  private brokerReadiness(ready: boolean): void {
    this.log.warn({ ready }, ready ? 'broker reachable again' : 'broker unreachable');
    if (!ready) {
      this.brokerWasDown = true;
      // From now until its catch-up, a channel's live publications wait (see `catchUp`).
      for (const channel of this.positions.keys()) if (!this.held.has(channel)) this.held.set(channel, []);
      return;
    }
    if (this.brokerWasDown) {
      this.brokerWasDown = false;
      // Registry entries may have expired (or Redis lost them): they are
      // back before the catch-up reads history, so nothing falls in between.
      void this.refreshRegistry().then(() => this.catchUp());
      void this.refreshPresence();
    }
  }

  /**
   * After the broker was unreachable, publications may have been missed.
   * Each local channel with history is read from the last dispatched offset
   * and the gap is delivered (sessions drop what they already have). Where
   * the gap cannot be filled (history lost or too short), the channel's
   * sessions are told to reconnect: their recovery then says `recovered: false`.
   */
  private async catchUp(): Promise<void> {
    for (const channel of [...this.positions.keys()]) await this.catchUpChannel(channel);
    // Channels that left meanwhile, or joined the list after the loop started.
    for (const channel of [...this.held.keys()]) if (!this.catching.has(channel)) this.release(channel);
  }

  /** Catch `channel` up from history; joins the catch-up already under way for it, if any. */
  private catchUpChannel(channel: string): Promise<void> {
    let running = this.catching.get(channel);
    if (!running) {
      running = this.fill(channel).finally(() => this.catching.delete(channel));
      this.catching.set(channel, running);
    }
    return running;
  }

  /** Deliver what `channel` missed since the last dispatched offset, then what was held meanwhile. */
  private async fill(channel: string): Promise<void> {
    const kept = this.positions.get(channel);
    const policy = this.namespaces.of(channel).history;
    if (!kept || !policy || !this.local.has(channel)) {
      this.release(channel);
      return;
    }
    // The position as it was when the catch-up began (deliveries move the kept one in place).
    const pos = { ...kept };
    try {
      const page = await this.metrics.brokerCall('history', () => this.broker.history(channel, { since: pos.offset, limit: policy.size }, policy));
      if (!covers(page, pos)) {
        this.metrics.recoveries.inc({ result: 'failed' });
        this.held.delete(channel);
        for (const s of [...(this.local.get(channel) ?? [])]) {
          s.disconnect(CloseCode.StateLost, 'messages may have been lost: reconnect to recover', true);
        }
        return;
      }
      const ts = Date.now();
      for (const m of page.messages) this.deliverLocal({ ...m, ts });
    } catch (err) {
      this.log.warn({ err, channel }, 'catch-up failed');
    }
    this.release(channel);
  }

  /** Deliver what was held back for `channel` (sessions drop what the catch-up already gave them), and stop holding. */
  private release(channel: string): void {
    const held = this.held.get(channel);
    this.held.delete(channel);
    for (const pub of held ?? []) this.deliverLocal(pub);
  }

  private forget(session: Session): void {
    if (!this.sessions.delete(session)) return;
    this.metrics.connections.dec();
    if (session.closeCode !== undefined) this.metrics.disconnects.inc({ code: String(session.closeCode) });
    for (const channel of [...session.channels.keys()]) this.drop(session, channel);
  }
}

/** Personal channels always keep presence: `/api/users/:user` reads it. */
function tracksPresence(namespacePresence: boolean, channel: string): boolean {
  return namespacePresence || personalChannelUser(channel) !== undefined;
}

/**
 * Recovered messages split into what one reply (or welcome) carries, at
 * most `budget` bytes encoded, and the rest. A backlog larger than a
 * connection may buffer (an offline user's personal channel, say) then
 * reaches a slow client without closing it as a slow consumer.
 */
export function splitReplay(messages: Publication[], budget: number): { inline: Publication[]; rest: Publication[] } {
  let bytes = 0;
  for (let i = 0; i < messages.length; i++) {
    bytes += Buffer.byteLength(encodeMessage(messages[i]!));
    if (bytes > budget) return { inline: messages.slice(0, i), rest: messages.slice(i) };
  }
  return { inline: messages, rest: [] };
}
