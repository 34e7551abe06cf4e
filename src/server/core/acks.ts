/**
 * Acknowledged positions on their way to the broker (offline delivery).
 * Clients ack often (the SDK batches per 100 ms or so); the broker sees at
 * most one write per channel and reader per interval, carrying the newest
 * position. A write that fails stays pending for the next one. What is not
 * written yet when a node dies is re-delivered on the next fresh connect:
 * at least once, never lost.
 */
import type { Logger } from 'pino';
import type { Broker } from '../../brokers/broker.js';
import type { StreamPosition } from '../../protocol/index.js';
import type { Metrics } from '../metrics.js';

/** How often pending positions are written. */
export const ACK_FLUSH_MS = 250;
/** Pending positions kept at most (one per channel and reader); past it, new ones wait for the next write. */
const MAX_PENDING = 100_000;

interface Pending {
  channel: string;
  reader: string;
  position: StreamPosition;
  ttlMs: number;
}

export class AckWriter {
  private pending = new Map<string, Pending>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly broker: Broker,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** `reader` has received everything up to `position` on `channel`. */
  note(channel: string, reader: string, position: StreamPosition, ttlMs: number): void {
    const key = `${reader}\u0000${channel}`;
    const kept = this.pending.get(key);
    if (kept && kept.position.epoch === position.epoch && kept.position.offset >= position.offset) return;
    if (!kept && this.pending.size >= MAX_PENDING) return;
    this.pending.set(key, { channel, reader, position, ttlMs });
    this.timer ??= setTimeout(() => void this.flush(), ACK_FLUSH_MS);
  }

  /** Write everything pending now (a drain calls it before the broker closes). */
  flush(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing ??= this.write().finally(() => {
      this.flushing = undefined;
      if (this.pending.size > 0) this.timer ??= setTimeout(() => void this.flush(), ACK_FLUSH_MS);
    });
    return this.flushing;
  }

  /** Stop writing; what is pending is dropped (see the file comment). */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
  }

  private async write(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    const failed: Array<[string, Pending]> = [];
    await Promise.all(
      [...batch].map(async ([key, p]) => {
        try {
          await this.broker.store.saveAck(p.channel, p.reader, p.position, p.ttlMs);
          this.metrics.acksSaved.inc({ result: 'ok' });
        } catch (err) {
          this.metrics.acksSaved.inc({ result: 'failed' });
          this.log.debug({ err, channel: p.channel }, 'could not save an acknowledged position: kept for the next write');
          failed.push([key, p]);
        }
      }),
    );
    // A newer position noted meanwhile wins over a failed older one.
    for (const [key, p] of failed) if (!this.pending.has(key) && this.pending.size < MAX_PENDING) this.pending.set(key, p);
  }
}
