/**
 * Where a client stands in one channel's stream: the last `{offset, epoch}`
 * delivered. It de-duplicates (a message at or below the position, in the
 * same epoch, was already delivered) and is what the client asks to recover
 * from after a reconnect.
 */
import type { Publication, StreamPosition } from '../protocol/index.js';

export class StreamCursor {
  private pos: StreamPosition | undefined;

  /** The last position delivered or reported by the server, or undefined when nothing is known yet. */
  get position(): StreamPosition | undefined {
    return this.pos ? { ...this.pos } : undefined;
  }

  /**
   * The position to send as `since` when (re)subscribing: the position, when
   * it has an epoch (a channel without history has none to recover from).
   */
  get since(): StreamPosition | undefined {
    return this.pos && this.pos.epoch !== '' ? { ...this.pos } : undefined;
  }

  /**
   * Whether `pub` is new and should be delivered; advances the position when
   * it is. Messages without an offset (channels without history) are always
   * new. A different epoch means the numbering restarted, so its first
   * message is new whatever its offset.
   */
  accept(pub: Publication): boolean {
    if (pub.offset === undefined) return true;
    const epoch = pub.epoch ?? this.pos?.epoch ?? '';
    if (this.pos && this.pos.epoch === epoch && pub.offset <= this.pos.offset) return false;
    this.pos = { offset: pub.offset, epoch };
    return true;
  }

  /**
   * Move forward to the server's reported top (from a subscribe reply or a
   * welcome) so a later recovery starts there even if no message arrived.
   * Never moves backwards, and keeps a position in a different epoch, which
   * came from a later live message.
   */
  advanceTo(offset: number | undefined, epoch: string | undefined): void {
    if (offset === undefined || epoch === undefined) return;
    if (!this.pos) this.pos = { offset, epoch };
    else if (this.pos.epoch === epoch && offset > this.pos.offset) this.pos = { offset, epoch };
  }

  /** Forget the position, or restart it at the server's top (recovery failed: the app reloads state). */
  reset(offset?: number, epoch?: string): void {
    this.pos = offset !== undefined && epoch !== undefined ? { offset, epoch } : undefined;
  }
}

/** The server's answer to "recover from `since`": a subscribe reply or the welcome's personal-channel part. */
export interface RecoveryResult {
  offset?: number;
  epoch?: string;
  recovered: boolean;
  messages: Publication[];
}

export interface RecoveryOutcome {
  /** Recovery was asked for (a position was known). */
  wasRecovering: boolean;
  /** Asked for and returned in full. */
  recovered: boolean;
}

export interface RecoveryHandlers {
  /** Recovery was asked for and failed: the app must reload its state. */
  reset(): void;
  /** The (re)subscription is in place; called before any message is delivered. */
  ready(outcome: RecoveryOutcome): void;
  /** Deliver one new message (already de-duplicated). */
  deliver(pub: Publication): void;
}

/**
 * Apply a (re)subscription's result to `cursor`, in the order the app must
 * see things: when recovery failed (asked for, or done by the server from
 * an acknowledged position), the position restarts at the server's top
 * and `reset` fires; then `ready`; then the recovered `messages` and the live
 * messages `buffered` while waiting for the result, de-duplicated; finally
 * the position moves up to the server's top so a later recovery starts there.
 */
export function applyRecovery(
  cursor: StreamCursor,
  since: StreamPosition | undefined,
  result: RecoveryResult,
  buffered: readonly Publication[],
  handlers: RecoveryHandlers,
): RecoveryOutcome {
  const wasRecovering = since !== undefined;
  const outcome = { wasRecovering, recovered: wasRecovering && result.recovered };
  // Also without `since`: a fresh client that the server resumed from its
  // device's acknowledged position may be told that history was lost.
  if (!result.recovered) {
    cursor.reset(result.offset, result.epoch);
    handlers.reset();
  }
  handlers.ready(outcome);
  for (const pub of [...result.messages, ...buffered]) if (cursor.accept(pub)) handlers.deliver(pub);
  cursor.advanceTo(result.offset, result.epoch);
  return outcome;
}
