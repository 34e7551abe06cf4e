/**
 * Join and leave frames, for the channels of namespaces with `joinLeave`:
 * once a session's presence entry on such a channel is added (it
 * subscribed) or removed (it unsubscribed or closed) at the broker, its
 * node writes `join` or `leave` to its own subscribers of the channel and
 * tells every other node (`ClusterView.announce`), which write it to
 * theirs. The session itself is not told of its own join or leave, and a
 * subscriber still recovering its channel misses the frames meanwhile (its
 * subscribe reply comes after them; presence reads the members).
 */
import type { Logger } from 'pino';
import type { MemberFrame } from '../../protocol/index.js';
import type { PresenceItem } from '../../brokers/broker.js';
import type { Interest } from './interest.js';

export class Members {
  constructor(
    private readonly interest: Interest,
    /** Tell the other nodes (resolves once sent); absent for a node on its own. */
    private readonly announce: ((frame: MemberFrame) => Promise<void>) | undefined,
    private readonly log: Logger,
  ) {}

  /** `item`'s session joined or left its channel on this node: tell the subscribers here and on the other nodes. */
  changed(type: MemberFrame['type'], { channel, entry }: PresenceItem): void {
    const frame: MemberFrame = { type, channel, user: entry.user, session: entry.session };
    this.deliver(frame);
    this.announce?.(frame).catch((err: unknown) => this.log.debug({ err, channel }, `${type} not announced to the other nodes`));
  }

  /** A frame another node announced; a malformed one is dropped. */
  received(frame: unknown): void {
    if (isMemberFrame(frame)) this.deliver(frame);
    else this.log.warn('malformed join or leave announcement dropped');
  }

  private deliver(frame: MemberFrame): void {
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
