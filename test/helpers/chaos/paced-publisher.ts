/**
 * What every publisher of the chaos suite shares, whatever way its messages
 * enter the system: one chain per user, a step at a time at a steady pace
 * (so that a user's seq order is the order the system is given them in),
 * the counts the figures report, and writing what was acknowledged to the
 * ledger. A publisher says only how one step gets its messages in
 * (`publisher.ts`: `POST /api/send`; `outbox-publisher.ts`: rows of a
 * PostgreSQL outbox).
 */
import type { Ledger } from './ledger.js';
import { sleep } from '../wait.js';

export interface PublisherStats {
  /** Messages acknowledged (a 2xx; a committed outbox row). */
  acked: number;
  /** Attempts made, first tries included (HTTP requests; outbox transactions). */
  attempts: number;
  /** Attempts after a network error, timeout or 5xx. */
  retries: number;
  /** Messages given up (not counted as published): not acknowledged in time, or in an outbox transaction that failed. */
  gaveUp: number;
  /** Messages refused with a 4xx (a bug in the test or the server). */
  refused: number;
}

export interface PaceOptions {
  users: readonly string[];
  /** Pause between the starts of one user's steps, ms. */
  intervalMs: number;
}

export abstract class PacedPublisher {
  readonly stats: PublisherStats = { acked: 0, attempts: 0, retries: 0, gaveUp: 0, refused: 0 };
  /** When the last acknowledgement arrived (0 before the first). */
  lastAckAt = 0;
  private stopping = false;
  /** Ends attempts under way and every retry loop at once (tear-down after a failure). */
  protected readonly abortion = new AbortController();
  private chains: Promise<void>[] = [];
  /** `release()` runs once, however often the publisher is stopped or aborted. */
  private released: Promise<void> | undefined;

  constructor(
    protected readonly ledger: Ledger,
    private readonly pace: PaceOptions,
  ) {}

  /** Start one chain per user, spread over the first interval. */
  start(): this {
    const { users, intervalMs } = this.pace;
    this.chains = users.map((user, i) => this.chain(user, (i * intervalMs) / users.length));
    return this;
  }

  /** Stop starting new steps; resolves when the ones under way are acknowledged or given up. */
  async stop(): Promise<PublisherStats> {
    this.stopping = true;
    await Promise.all(this.chains);
    await (this.released ??= this.release());
    return this.stats;
  }

  /** Stop at once: attempts under way are abandoned, nothing more is sent. */
  async abort(): Promise<void> {
    this.stopping = true;
    this.abortion.abort();
    await Promise.all(this.chains);
    await (this.released ??= this.release());
  }

  /** Get `user`'s next message(s) into the system, until acknowledged, refused or given up. */
  protected abstract step(user: string): Promise<void>;

  /** Give back what the publisher holds (connections), once no step runs. */
  protected async release(): Promise<void> {}

  /** Write `user`'s message `seq` to the ledger as acknowledged now, with the position the server answered if it answered one. */
  protected acknowledge(user: string, seq: number, position?: { offset: number; epoch: string }): void {
    this.stats.acked++;
    this.lastAckAt = Date.now();
    this.ledger.ack({ user, seq, ...position, at: this.lastAckAt });
  }

  private async chain(user: string, delayMs: number): Promise<void> {
    await sleep(delayMs);
    while (!this.stopping) {
      const started = Date.now();
      await this.step(user);
      await sleep(Math.max(0, this.pace.intervalMs - (Date.now() - started)));
    }
  }
}
