/**
 * The business service of the chaos suite: it sends each user a stream of
 * logical messages `{seq}` through the load balancer (`POST /api/send`),
 * one at a time per user so that seq order is publish order. A message is
 * retried on network errors, timeouts and 5xx, with backoff, always with
 * the same `idempotencyKey`; only a 2xx counts as published. A server that
 * ignores the key may publish a retried message twice: the accounting sees
 * that as a duplicate. The pacing and the counts are `PacedPublisher`'s.
 */
import { API_KEY } from './auth.js';
import type { Ledger } from './ledger.js';
import { PacedPublisher, type PaceOptions } from './paced-publisher.js';
import { sleep } from '../wait.js';

export interface PublisherOptions extends PaceOptions {
  /** The server API base (the load balancer). */
  url: string;
  /** One attempt's timeout, ms. Default 2000. */
  timeoutMs?: number;
  /** A message not acknowledged within this long is given up, ms. Default 15000. */
  giveUpMs?: number;
  /** Extra bytes of padding in each message to `user` (0 by default): makes slow consumers fill buffers. */
  padding?: (user: string) => number;
  /** Scopes idempotency keys to one run. */
  runId: string;
}

const BACKOFF_MIN_MS = 50;
const BACKOFF_MAX_MS = 1000;

export class Publisher extends PacedPublisher {
  private readonly timeoutMs: number;
  private readonly giveUpMs: number;

  constructor(
    ledger: Ledger,
    private readonly opts: PublisherOptions,
  ) {
    super(ledger, opts);
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.giveUpMs = opts.giveUpMs ?? 15_000;
  }

  protected override step(user: string): Promise<void> {
    return this.publish(user, this.ledger.nextSeq(user));
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
        this.acknowledge(user, seq, { offset, epoch });
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
