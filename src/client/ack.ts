/**
 * Batched `ack` frames: at most one per channel per interval, carrying the
 * highest offset delivered on it since the last one.
 */
import type { AckFrame } from '../protocol/index.js';

export class AckBatcher {
  private readonly pending = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param interval milliseconds between batches
   * @param send writes one frame; returns false when there is no open connection
   */
  constructor(
    private readonly interval: number,
    private readonly send: (frame: AckFrame) => boolean,
  ) {}

  /** Everything up to `offset` on `channel` was delivered to the app. */
  note(channel: string, offset: number): void {
    const prev = this.pending.get(channel);
    if (prev === undefined || offset > prev) this.pending.set(channel, offset);
    this.timer ??= setTimeout(() => this.flush(), this.interval);
  }

  /** Send what is pending now. Acks that cannot be sent are dropped: the next connection is a new session. */
  flush(): void {
    this.stop();
    for (const [channel, offset] of this.pending) this.send({ type: 'ack', channel, offset });
    this.pending.clear();
  }

  /** Forget pending acks (the connection dropped). */
  clear(): void {
    this.stop();
    this.pending.clear();
  }

  private stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
