/**
 * Control messages this node refused: each is counted (`onRejected`, the
 * metric), and logged at most once per interval with how many were refused
 * since the last line, so that a flood of forged messages cannot flood the
 * log too.
 */
import type { Logger } from 'pino';
import type { ControlRejectReason } from './validate.js';

/** At most one log line per this many milliseconds. */
export const REJECTION_LOG_INTERVAL_MS = 10_000;

export class ControlRejections {
  private lastLogAt = -Infinity;
  private unlogged = 0;

  constructor(
    private readonly log: Logger,
    private readonly onRejected: (reason: ControlRejectReason) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** Count one refused message; log it unless a line went out within the interval. */
  reject(reason: ControlRejectReason, detail: string): void {
    this.onRejected(reason);
    this.unlogged++;
    const now = this.now();
    if (now - this.lastLogAt < REJECTION_LOG_INTERVAL_MS) return;
    this.log.warn({ reason, detail, refused: this.unlogged }, 'control message refused (counted in switchboard_control_rejected_total)');
    this.lastLogAt = now;
    this.unlogged = 0;
  }
}
