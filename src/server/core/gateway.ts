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
  type StreamPosition,
  type SubscribeResult,
} from '../../protocol/index.js';
import type { Broker, BrokerPublication, PresenceEntry, PresenceItem } from '../../brokers/broker.js';
import type { Metrics } from '../metrics.js';
import type { NodeOptions } from '../options.js';
import { Namespaces } from './namespaces.js';
import { Session, type Transport } from './session.js';

export interface OpenSession {
  user: string;
  grants: string[];
  transport: Transport;
  /** `?since=&epoch=` of the personal channel. */
  since?: StreamPosition;
}

export class Gateway {
  readonly namespaces: Namespaces;
  readonly sessions = new Set<Session>();
  /** Local subscribers by channel: the node's interest. */
  private readonly local = new Map<string, Set<Session>>();
  /** The broker subscription of each local channel, confirmed or still pending: every subscriber waits for it. */
  private readonly interest = new Map<string, Promise<void>>();
  /** The newest offset this node has dispatched per local channel with history: where a catch-up starts. */
  private readonly positions = new Map<string, { offset: number; epoch: string }>();
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private presenceTimer: ReturnType<typeof setInterval> | undefined;
  /** Whether the broker was unreachable since the last catch-up. */
  private brokerWasDown = false;

  constructor(
    readonly nodeId: string,
    private readonly options: NodeOptions,
    readonly broker: Broker,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.namespaces = new Namespaces(options);
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
    this.presenceTimer = setInterval(() => void this.refreshPresence(), (this.options.presenceTtl * 1000) / 3);
    this.presenceTimer.unref();
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.presenceTimer) clearInterval(this.presenceTimer);
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
      grants: init.grants,
      transport: init.transport,
      limits: this.options.limits,
      now: Date.now(),
      onClosed: (s) => this.forget(s),
    });
    this.sessions.add(session);
    this.metrics.connections.inc();
    const channel = personalChannel(init.user);
    session.enqueue(async () => {
      try {
        await this.subscribe(session, channel, init.since, (result) =>
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
   * Subscribe `session` to `channel`, recovering what it missed since
   * `since`. `respond` is called with the result at the moment it must be
   * sent: before any live message that follows it.
   */
  async subscribe(
    session: Session,
    channel: string,
    since: StreamPosition | undefined,
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
      await this.ensureInterest(channel);
      if (tracksPresence(policy.presence, channel)) {
        await this.broker.presenceAdd([{ channel, entry: this.presenceEntry(session) }], this.presenceTtlMs);
        // Closed meanwhile: `forget` ran before the entry existed, so remove it here.
        if (!session.channels.has(channel)) {
          await this.broker.presenceRemove([{ channel, session: session.id }]);
          return;
        }
      }
      let result: SubscribeResult = { channel, recovered: true, messages: [] };
      if (policy.history) {
        const page = await this.broker.history(
          channel,
          since ? { since: since.offset, limit: policy.history.size } : { limit: 0 },
          policy.history,
        );
        const recovered =
          !since ||
          (since.epoch === page.epoch && since.offset <= page.offset && since.offset + 1 >= page.earliest);
        result = {
          channel,
          offset: page.offset,
          epoch: page.epoch,
          recovered,
          messages: since && recovered ? page.messages : [],
        };
        if (since) this.metrics.recoveries.inc({ result: recovered ? 'recovered' : 'failed' });
        if (!this.positions.has(channel)) this.positions.set(channel, { offset: page.offset, epoch: page.epoch });
      } else if (since) {
        result.recovered = false;
      }
      session.ready(channel, { offset: result.offset ?? 0, epoch: result.epoch }, () => respond(result));
    } catch (err) {
      if (session.channels.has(channel)) this.drop(session, channel);
      throw err instanceof SwitchboardError ? err : new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable');
    }
  }

  private ensureInterest(channel: string): Promise<void> {
    let pending = this.interest.get(channel);
    if (!pending) {
      const p = this.broker.subscribe(channel);
      this.interest.set(channel, p);
      // A failed subscription is tried afresh by the next subscriber.
      p.catch(() => {
        if (this.interest.get(channel) === p) this.interest.delete(channel);
      });
      pending = p;
    }
    return pending;
  }

  async unsubscribe(session: Session, channel: string): Promise<void> {
    if (session.channels.has(channel)) this.drop(session, channel);
  }

  async publish(channel: string, data: unknown, from?: string): Promise<PublishResult> {
    const policy = this.namespaces.of(channel);
    const pub: Omit<BrokerPublication, 'offset' | 'epoch'> =
      from === undefined ? { channel, data, ts: Date.now() } : { channel, data, from, ts: Date.now() };
    try {
      const result = await this.broker.publish(pub, policy.history);
      this.metrics.published.inc({ source: from === undefined ? 'api' : 'client' });
      return result;
    } catch (err) {
      this.log.warn({ err, channel }, 'publish failed');
      throw new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable: the message was not accepted');
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
    const subscribers = this.local.get(pub.channel);
    if (!subscribers || subscribers.size === 0) return;
    if (pub.offset !== undefined && pub.epoch !== undefined) {
      const pos = this.positions.get(pub.channel);
      if (!pos || pos.epoch !== pub.epoch || pos.offset < pub.offset) {
        this.positions.set(pub.channel, { offset: pub.offset, epoch: pub.epoch });
      }
    }
    const { ts, ...wire } = pub;
    const bytes = Buffer.from(encodeMessage(wire as Publication));
    let written = 0;
    const now = Date.now();
    for (const s of subscribers) if (s.deliver(wire, bytes, now)) written++;
    if (written > 0) {
      this.metrics.delivered.inc(written);
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
      this.interest.delete(channel);
      this.positions.delete(channel);
      this.broker.unsubscribe(channel).catch((err: unknown) => this.log.warn({ err, channel }, 'unsubscribe failed'));
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
      return;
    }
    if (this.brokerWasDown) {
      this.brokerWasDown = false;
      void this.catchUp();
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
    for (const [channel, pos] of [...this.positions]) {
      const policy = this.namespaces.of(channel).history;
      if (!policy || !this.local.has(channel)) continue;
      try {
        const page = await this.broker.history(channel, { since: pos.offset, limit: policy.size }, policy);
        const complete = page.epoch === pos.epoch && pos.offset <= page.offset && pos.offset + 1 >= page.earliest;
        if (!complete) {
          this.metrics.recoveries.inc({ result: 'failed' });
          for (const s of [...(this.local.get(channel) ?? [])]) {
            s.disconnect(CloseCode.StateLost, 'messages may have been lost: reconnect to recover', true);
          }
          continue;
        }
        const ts = Date.now();
        for (const m of page.messages) this.dispatch({ ...m, ts });
      } catch (err) {
        this.log.warn({ err, channel }, 'catch-up failed');
      }
    }
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
