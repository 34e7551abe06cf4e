/**
 * The business service of the chaos suite: it sends each user a stream of
 * logical messages `{seq}` through the load balancer (`POST /api/send`),
 * one at a time per user so that seq order is publish order. A message is
 * retried on network errors, timeouts and 5xx, with backoff, always with
 * the same `idempotencyKey`; only a 2xx counts as published. A server that
 * ignores the key may publish a retried message twice: the accounting sees
 * that as a duplicate.
 */
import { API_KEY } from './auth.js';
import type { Ledger } from './ledger.js';
import { sleep } from '../wait.js';

export interface PublisherOptions {
  /** The server API base (the load balancer). */
  url: string;
  users: readonly string[];
  /** Pause between one user's messages, ms. */
  intervalMs: number;
  /** One attempt's timeout, ms. Default 2000. */
  timeoutMs?: number;
  /** A message not acknowledged within this long is given up, ms. Default 15000. */
  giveUpMs?: number;
  /** Extra bytes of padding in each message to `user` (0 by default): makes slow consumers fill buffers. */
  padding?: (user: string) => number;
  /** Scopes idempotency keys to one run. */
  runId: string;
}

export interface PublisherStats {
  /** Messages acknowledged with a 2xx. */
  acked: number;
  /** HTTP attempts made, first tries included. */
  attempts: number;
  /** Attempts after a network error, timeout or 5xx. */
  retries: number;
  /** Messages given up after `giveUpMs` (not counted as published). */
  gaveUp: number;
  /** Messages refused with a 4xx (a bug in the test or the server). */
  refused: number;
}

const BACKOFF_MIN_MS = 50;
const BACKOFF_MAX_MS = 1000;

export class Publisher {
  readonly stats: PublisherStats = { acked: 0, attempts: 0, retries: 0, gaveUp: 0, refused: 0 };
  /** When the last 2xx arrived (0 before the first). */
  lastAckAt = 0;
  private stopping = false;
  /** Ends attempts under way and every retry loop at once (tear-down after a failure). */
  private readonly abortion = new AbortController();
  private chains: Promise<void>[] = [];
  private readonly timeoutMs: number;
  private readonly giveUpMs: number;

  constructor(
    private readonly ledger: Ledger,
    private readonly opts: PublisherOptions,
  ) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.giveUpMs = opts.giveUpMs ?? 15_000;
  }

  /** Start one chain per user, spread over the first interval. */
  start(): this {
    this.chains = this.opts.users.map((user, i) => this.chain(user, (i * this.opts.intervalMs) / this.opts.users.length));
    return this;
  }

  /** Stop starting new messages; resolves when the ones under way are acknowledged or given up. */
  async stop(): Promise<PublisherStats> {
    this.stopping = true;
    await Promise.all(this.chains);
    return this.stats;
  }

  /** Stop at once: attempts under way are abandoned, nothing more is sent. */
  async abort(): Promise<void> {
    this.stopping = true;
    this.abortion.abort();
    await Promise.all(this.chains);
  }

  private async chain(user: string, delayMs: number): Promise<void> {
    await sleep(delayMs);
    while (!this.stopping) {
      const started = Date.now();
      await this.publish(user, this.ledger.nextSeq(user));
      await sleep(Math.max(0, this.opts.intervalMs - (Date.now() - started)));
    }
  }

  /** Send one logical message until a 2xx, a 4xx, or `giveUpMs`. */
  private async publish(user: string, seq: number): Promise<void> {
    const pad = this.opts.padding?.(user) ?? 0;
    const body = JSON.stringify({
      user,
      data: pad > 0 ? { seq, pad: 'x'.repeat(pad) } : { seq },
      idempotencyKey: `${this.opts.runId}:${user}:${seq}`,
    });
    const deadline = Date.now() + this.giveUpMs;
    for (let attempt = 0; ; attempt++) {
      if (this.abortion.signal.aborted) return;
      if (attempt > 0) this.stats.retries++;
      this.stats.attempts++;
      let status = 0;
      let answer: unknown;
      try {
        const res = await fetch(`${this.opts.url}/api/send`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
          body,
          signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.abortion.signal]),
        });
        status = res.status;
        answer = await res.json().catch(() => undefined);
      } catch {
        // network error or timeout: retried below
      }
      if (status >= 200 && status < 300) {
        const { offset, epoch } = answer as { offset: number; epoch: string };
        this.stats.acked++;
        this.lastAckAt = Date.now();
        this.ledger.ack({ user, seq, offset, epoch, at: this.lastAckAt });
        return;
      }
      if (status >= 400 && status < 500) {
        this.stats.refused++;
        return;
      }
      const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
      if (Date.now() + backoff > deadline) {
        this.stats.gaveUp++;
        return;
      }
      await sleep(backoff * (0.5 + Math.random() / 2));
    }
  }
}
