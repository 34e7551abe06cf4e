/**
 * Join and leave frames, for the channels of namespaces with `joinLeave`:
 * once a session's presence entry on such a channel is added (it
 * subscribed) or removed (it unsubscribed or closed) at the broker, its
 * node writes `join` or `leave` to its own subscribers of the channel and
 * tells every other node (`ClusterView.announce`), which write it to
 * theirs. The session itself is not told of its own join or leave, and a
 * subscriber still recovering its channel misses the frames meanwhile (its
 * subscribe reply comes after them; presence reads the members).
 *
 * A node that dies cannot announce its sessions' leaves, so each node
 * keeps the members of the `joinLeave` channels it holds (read from
 * presence when it starts holding one, then followed by the frames), and
 * writes `leave` for the dead node's sessions to its own subscribers when
 * the cluster declares that node dead.
 */
import type { Logger } from 'pino';
import type { MemberFrame } from '../../protocol/index.js';
import type { PresenceEntry, PresenceItem } from '../../brokers/broker.js';
import type { Interest } from './interest.js';

/** The members of one held channel: session → user and node. */
interface Roster {
  members: Map<string, { user: string; node: string }>;
  /** Sessions that left while the first presence read was under way (it may still list them); null once read. */
  leftWhileReading: Set<string> | null;
  /** Whether `members` lists every member (the read succeeded): a leave of a session not listed was told already. */
  complete: boolean;
}

export class Members {
  /** The members of each held `joinLeave` channel. */
  private readonly rosters = new Map<string, Roster>();

  constructor(
    private readonly interest: Interest,
    /** Tell the other nodes (resolves once sent); absent for a node on its own. */
    private readonly announce: ((frame: MemberFrame) => Promise<void>) | undefined,
    /** The presence entries of a channel, cluster-wide. */
    private readonly read: (channel: string) => Promise<PresenceEntry[]>,
    private readonly log: Logger,
  ) {}

  /** This node holds `channel` (a local session subscribes): keep its members from now on. */
  hold(channel: string): void {
    if (this.rosters.has(channel)) return;
    const roster: Roster = { members: new Map(), leftWhileReading: new Set(), complete: false };
    this.rosters.set(channel, roster);
    this.read(channel).then(
      (entries) => {
        const left = roster.leftWhileReading;
        roster.leftWhileReading = null;
        roster.complete = true;
        for (const e of entries) if (!left?.has(e.session) && !roster.members.has(e.session)) roster.members.set(e.session, { user: e.user, node: e.node });
      },
      (err: unknown) => {
        roster.leftWhileReading = null;
        this.log.debug({ err, channel }, 'members not read: a node that dies now may leave some without a leave frame');
      },
    );
  }

  /** This node no longer holds `channel` (its last local subscriber left). */
  release(channel: string): void {
    this.rosters.delete(channel);
  }

  /** `item`'s session joined or left its channel on this node: tell the subscribers here and on the other nodes. */
  changed(type: MemberFrame['type'], { channel, entry }: PresenceItem): void {
    const frame: MemberFrame = { type, channel, user: entry.user, session: entry.session };
    this.deliver(frame, entry.node);
    this.announce?.(frame).catch((err: unknown) => this.log.debug({ err, channel }, `${type} not announced to the other nodes`));
  }

  /** A frame that node `from` announced; a malformed one is dropped. */
  received(frame: unknown, from: string): void {
    if (isMemberFrame(frame)) this.deliver(frame, from);
    else this.log.warn({ from }, 'malformed join or leave announcement dropped');
  }

  /** `node` died or left: its sessions leave every channel held here. */
  gone(node: string): void {
    for (const [channel, roster] of this.rosters) {
      for (const [session, m] of roster.members) {
        if (m.node === node) this.deliver({ type: 'leave', channel, user: m.user, session }, node);
      }
    }
  }

  private deliver(frame: MemberFrame, node: string): void {
    const roster = this.rosters.get(frame.channel);
    if (roster && frame.type === 'join') roster.members.set(frame.session, { user: frame.user, node });
    if (roster && frame.type === 'leave') {
      // Told already: the node left and `gone` wrote its leaves before this frame came (it was sent after the node's `leave`).
      if (!roster.members.delete(frame.session) && roster.complete) return;
      roster.leftWhileReading?.add(frame.session);
    }
    const subscribers = this.interest.subscribers(frame.channel);
    if (!subscribers) return;
    for (const s of subscribers) {
      // Recovering: the frame would come before the subscribe reply.
      if (s.id !== frame.session && s.channels.get(frame.channel)?.pending === null) s.send(frame);
    }
  }
}

function isMemberFrame(v: unknown): v is MemberFrame {
  if (typeof v !== 'object' || v === null) return false;
  const f = v as Record<string, unknown>;
  return (f.type === 'join' || f.type === 'leave') && typeof f.channel === 'string' && typeof f.user === 'string' && typeof f.session === 'string';
}
