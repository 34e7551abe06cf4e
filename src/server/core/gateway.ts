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
  SwitchboardError,
  type Publication,
  type PublishResult,
  type StreamPosition,
  type SubscribeResult,
} from '../../protocol/index.js';
import type { Broker, BrokerPublication, PresenceEntry } from '../../brokers/broker.js';
import type { Metrics } from '../metrics.js';
import type { NodeOptions } from '../options.js';
import { Namespaces } from './namespaces.js';
import { Session, type Transport } from './session.js';

export interface OpenSession {
  user: string;
  grants: string[];
  ip: string;
  transport: Transport;
  /** `?since=&epoch=` of the personal channel. */
  since?: StreamPosition;
}

export class Gateway {
  readonly namespaces: Namespaces;
  readonly sessions = new Set<Session>();
  /** Local subscribers by channel: the node's interest. */
  private readonly local = new Map<string, Set<Session>>();
  private heartbeat: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly nodeId: string,
    private readonly options: NodeOptions,
    readonly broker: Broker,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.namespaces = new Namespaces(options);
  }

  async start(): Promise<void> {
    await this.broker.start({
      onPublication: (pub) => this.dispatch(pub),
      onReadyChange: (ready) => this.log.warn({ ready }, 'broker readiness changed'),
    });
    const everyMs = Math.max(100, Math.min(1000, (this.options.ping * 1000) / 4));
    this.heartbeat = setInterval(() => this.beat(Date.now()), everyMs);
    this.heartbeat.unref();
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
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
      ip: init.ip,
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
    try {
      if (!subscribers) {
        this.local.set(channel, (subscribers = new Set()));
        subscribers.add(session);
        await this.broker.subscribe(channel);
      } else {
        subscribers.add(session);
      }
      if (policy.presence) {
        await this.broker.presenceAdd(channel, { user: session.user, session: session.id, node: this.nodeId });
        // Closed meanwhile: `forget` ran before the entry existed, so remove it here.
        if (!session.channels.has(channel)) {
          await this.broker.presenceRemove(channel, session.id);
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
      } else if (since) {
        result.recovered = false;
      }
      session.ready(channel, { offset: result.offset ?? 0, epoch: result.epoch }, () => respond(result));
    } catch (err) {
      if (session.channels.has(channel)) this.drop(session, channel);
      throw err instanceof SwitchboardError ? err : new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable');
    }
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
    const { ts, ...wire } = pub;
    const bytes = Buffer.from(encodeMessage(wire as Publication));
    let written = 0;
    for (const s of subscribers) if (s.deliver(wire, bytes)) written++;
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
      this.broker.unsubscribe(channel).catch((err: unknown) => this.log.warn({ err, channel }, 'unsubscribe failed'));
    }
    if (this.namespaces.of(channel).presence) {
      this.broker
        .presenceRemove(channel, session.id)
        .catch((err: unknown) => this.log.warn({ err, channel }, 'presence remove failed'));
    }
  }

  private forget(session: Session): void {
    if (!this.sessions.delete(session)) return;
    this.metrics.connections.dec();
    if (session.closeCode !== undefined) this.metrics.disconnects.inc({ code: String(session.closeCode) });
    for (const channel of [...session.channels.keys()]) this.drop(session, channel);
  }
}
