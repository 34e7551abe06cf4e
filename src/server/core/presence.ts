/**
 * Presence: one entry per session and channel at the broker, for the
 * channels of namespaces that keep it and for every personal channel.
 * Entries expire unless refreshed, so a node that dies leaves none behind.
 */
import type { Logger } from 'pino';
import { ErrorCode, personalChannelUser, SwitchboardError } from '../../protocol/index.js';
import type { Broker, PresenceEntry, PresenceItem } from '../../brokers/broker.js';
import type { Interest } from './interest.js';
import type { Namespaces } from './namespaces.js';
import type { Session } from './session.js';

/** Entries per broker call of a refresh. */
const REFRESH_BATCH = 1000;

export class Presence {
  constructor(
    private readonly nodeId: string,
    private readonly broker: Broker,
    private readonly namespaces: Namespaces,
    private readonly interest: Interest,
    /** How long an entry lives unless refreshed. */
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {}

  /** Whether `channel` keeps presence. Personal channels always do: `/api/users/:user` reads it. */
  tracks(channel: string): boolean {
    return this.namespaces.of(channel).presence || personalChannelUser(channel) !== undefined;
  }

  /** Add the entry of `session` on `channel`, if the channel keeps presence. */
  add(session: Session, channel: string): Promise<void> | undefined {
    if (!this.tracks(channel)) return undefined;
    return this.broker.store.presenceAdd([{ channel, entry: this.entry(session) }], this.ttlMs);
  }

  /** Remove the entry of `session` on `channel` and wait for the broker. */
  removeNow(session: Session, channel: string): Promise<void> {
    return this.broker.store.presenceRemove([{ channel, session: session.id }]);
  }

  /** Remove the entry of `session` on `channel`, if the channel keeps presence, without waiting. */
  remove(session: Session, channel: string): void {
    if (!this.tracks(channel)) return;
    // If this fails (broker down), the entry expires on its own: nobody refreshes it.
    this.removeNow(session, channel).catch((err: unknown) => this.log.debug({ err, channel }, 'presence remove failed'));
  }

  /** The entries of `channel` across the cluster. */
  async list(channel: string): Promise<PresenceEntry[]> {
    try {
      return await this.broker.store.presence(channel);
    } catch {
      throw new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable');
    }
  }

  /** Re-add every local entry before it expires, in batches. */
  async refresh(): Promise<void> {
    if (!this.broker.ready) return;
    let batch: PresenceItem[] = [];
    const flush = async () => {
      const items = batch;
      batch = [];
      await this.broker.store.presenceAdd(items, this.ttlMs);
    };
    try {
      for (const [channel, sessions] of this.interest.channels()) {
        if (!this.tracks(channel)) continue;
        for (const s of sessions) {
          batch.push({ channel, entry: this.entry(s) });
          if (batch.length >= REFRESH_BATCH) await flush();
        }
      }
      if (batch.length > 0) await flush();
    } catch (err) {
      this.log.warn({ err }, 'presence refresh failed');
    }
  }

  private entry(session: Session): PresenceEntry {
    return { user: session.user, session: session.id, node: this.nodeId };
  }
}
