/**
 * Presence: one entry per session and channel at the broker, for the
 * channels of namespaces that keep it or that have `joinLeave`, and for
 * every personal channel. On `joinLeave` channels, each entry added or
 * removed is told to the channel's subscribers (`Members`).
 * Entries live while their session is subscribed and their node is alive:
 * nothing refreshes them, so idle sessions cost the broker nothing. Reads
 * keep the entries of live nodes only (the cluster drops a dead node's
 * entries, and until it has, they are filtered out here).
 */
import type { Logger } from 'pino';
import { ErrorCode, personalChannelUser, SwitchboardError } from '../../protocol/index.js';
import type { Broker, PresenceEntry, PresenceItem } from '../../brokers/broker.js';
import { TurnBatch } from '../../shared/batch.js';
import type { Interest } from './interest.js';
import type { Members } from './members.js';
import type { Namespaces } from './namespaces.js';
import type { Session } from './session.js';

/** Entries per broker call when they are all put back. */
const REASSERT_BATCH = 1000;
/** Removals that failed (broker down) kept for retrying when it is back; past this, the oldest are given up. */
const MAX_PENDING_REMOVALS = 100_000;

export class Presence {
  /** Removals the broker did not take, retried when it is back (keyed by channel and session). */
  private readonly pendingRemovals = new Map<string, PresenceItem>();
  /**
   * Entries removed within one turn (sessions that close together) go to
   * the broker in one call. Adds are not held for a turn: they go with the
   * subscription's other broker calls, in the same pipelined write. A
   * removal may overtake the add of its session; the subscribe that made
   * the add then finds the session gone and removes the entry again.
   */
  private readonly removals = new TurnBatch<PresenceItem>((items) => this.broker.store.presenceRemove(items));

  constructor(
    private readonly nodeId: string,
    private readonly broker: Broker,
    private readonly namespaces: Namespaces,
    private readonly interest: Interest,
    /** Whether a node is alive in this node's view of the cluster. */
    private readonly isAlive: (node: string) => boolean,
    private readonly log: Logger,
    private readonly members: Members,
  ) {}

  /** Whether `channel` keeps presence. Personal channels always do: `/api/users/:user` reads it. */
  tracks(channel: string): boolean {
    const ns = this.namespaces.of(channel);
    return ns.presence || ns.joinLeave === true || personalChannelUser(channel) !== undefined;
  }

  /** Add the entry of `session` on `channel`, if the channel keeps presence. */
  add(session: Session, channel: string): Promise<void> | undefined {
    if (!this.tracks(channel)) return undefined;
    this.pendingRemovals.delete(removalKey(channel, session.id));
    const item = this.item(session, channel);
    if (!this.namespaces.joinLeave(channel)) return this.broker.store.presenceAdd([item]);
    this.members.hold(channel);
    return this.broker.store.presenceAdd([item]).then(() => this.members.changed('join', item));
  }

  /** Remove the entry of `session` on `channel` and wait for the broker. */
  removeNow(session: Session, channel: string): Promise<void> {
    return this.removed(this.item(session, channel));
  }

  /**
   * Remove the entry of `session` on `channel`, if the channel keeps
   * presence. Settles once the broker has it, or once a failed removal is
   * kept for retrying; never rejects.
   */
  remove(session: Session, channel: string): Promise<void> | undefined {
    if (!this.tracks(channel)) return undefined;
    const item = this.item(session, channel);
    return this.removed(item).catch((err: unknown) => {
      // Retried when the broker is back (`reassert`): an entry is never left behind by a live node.
      this.log.debug({ err, channel }, 'presence remove failed; retried when the broker is back');
      if (this.pendingRemovals.size >= MAX_PENDING_REMOVALS) this.pendingRemovals.delete(this.pendingRemovals.keys().next().value!);
      this.pendingRemovals.set(removalKey(channel, session.id), item);
    });
  }

  /** The entries of `channel` across the cluster, of live nodes only. */
  async list(channel: string): Promise<PresenceEntry[]> {
    let entries: PresenceEntry[];
    try {
      entries = await this.broker.store.presence(channel);
    } catch {
      throw new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable');
    }
    return entries.filter((e) => this.isAlive(e.node));
  }

  /**
   * Put every local entry back and retry the removals that failed: after the
   * broker was unreachable (a removal may not have reached it), or after
   * another node declared this one dead and dropped its entries.
   */
  async reassert(): Promise<void> {
    if (!this.broker.ready) return;
    try {
      const removals = [...this.pendingRemovals];
      for (let i = 0; i < removals.length; i += REASSERT_BATCH) {
        const part = removals.slice(i, i + REASSERT_BATCH);
        await this.broker.store.presenceRemove(part.map(([, item]) => item));
        for (const [key] of part) this.pendingRemovals.delete(key);
      }
      let batch: PresenceItem[] = [];
      for (const [channel, sessions] of this.interest.channels()) {
        if (!this.tracks(channel)) continue;
        for (const s of sessions) {
          batch.push(this.item(s, channel));
          if (batch.length >= REASSERT_BATCH) {
            await this.broker.store.presenceAdd(batch);
            batch = [];
          }
        }
      }
      if (batch.length > 0) await this.broker.store.presenceAdd(batch);
    } catch (err) {
      this.log.warn({ err }, 'putting presence entries back failed');
    }
  }

  /** Remove `item` in this turn's batch; on a `joinLeave` channel, tell its subscribers once it is gone. */
  private removed(item: PresenceItem): Promise<void> {
    const removal = this.removals.add(item);
    return this.namespaces.joinLeave(item.channel) ? removal.then(() => this.members.changed('leave', item)) : removal;
  }

  private item(session: Session, channel: string): PresenceItem {
    return { channel, entry: { user: session.user, session: session.id, node: this.nodeId } };
  }
}

/** The key of a removal kept for retrying: one per session and channel. */
function removalKey(channel: string, session: string): string {
  return `${channel}\n${session}`;
}
