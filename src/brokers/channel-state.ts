/**
 * What the channel order (`channel-order.ts`) keeps per channel, sized for
 * the common case: a gateway holds one per local channel with history, and
 * most are idle ones passing publications in order. Such a channel keeps
 * its position only, about what a bare `{ offset, epoch }` costs; the rest
 * (`More`) exists while the channel holds, fills or is suspended.
 */
import type { BrokerPublication } from './broker.js';

/** A publication waiting; one read from history (`filled`, no `meta`) needs no predecessor. */
export interface Held<M> {
  pub: BrokerPublication;
  offset: number;
  meta: M | undefined;
  filled: boolean;
}

/** A channel's position, and the rest while it needs it. */
export interface ChannelState<M> {
  epoch: string | undefined;
  /** The last offset delivered (or known not to be needed); undefined until the channel starts. */
  last: number | undefined;
  more: More<M> | undefined;
}

/**
 * What a channel needs beyond its position: created when it first holds,
 * fills or is suspended and dropped once it is back to passing publications
 * in order, or kept for good where the order tells epochs apart or tracks
 * each channel's last use.
 */
export interface More<M> {
  /** Waiting for their predecessors, by offset. */
  held: Array<Held<M>>;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The history read under way, if any (cleared when the state is reset: a read begun before is then stale). */
  filling: Promise<void> | undefined;
  attempts: number;
  /** Everything is held until `catchUp`. */
  suspended: boolean;
  /** Past epochs, newest first. */
  retired: readonly string[];
  /** The latest store time among the publications seen (for telling epochs apart). */
  seenAt: number;
  /** When the channel was last used (where the order tracks it). */
  touched: number;
}

const NONE: readonly string[] = [];

/** A channel not started yet. */
export const newState = <M>(): ChannelState<M> => ({ epoch: undefined, last: undefined, more: undefined });

/** The channel's `More`, created if it has none. */
export function moreOf<M>(st: ChannelState<M>): More<M> {
  return (st.more ??= { held: [], timer: undefined, filling: undefined, attempts: 0, suspended: false, retired: NONE, seenAt: 0, touched: 0 });
}

/** Drop the channel's `More` once it is back to passing publications in order, unless it is kept for good (`lasting`). */
export function slim<M>(st: ChannelState<M>, lasting: boolean): void {
  const m = st.more;
  if (m && !lasting && m.held.length === 0 && !m.timer && !m.filling && !m.suspended && m.attempts === 0) st.more = undefined;
}
