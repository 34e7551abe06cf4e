/**
 * Publishing through the broker, with retries where they are safe: a
 * publish with an idempotency key is retried (full-jitter backoff) until
 * the publish deadline, since a retry cannot publish it twice.
 */
import type { Logger } from 'pino';
import { ErrorCode, SwitchboardError } from '../../protocol/index.js';
import type { Broker, BrokerPublication, Idempotency, PublishReceipt } from '../../brokers/broker.js';
import { backoffDelay } from '../../shared/backoff.js';
import { sleep } from '../../shared/time.js';
import type { Metrics } from '../metrics.js';
import type { NodeOptions } from '../options.js';
import type { RoutingStrategy } from '../routing/strategies.js';
import type { Namespaces } from './namespaces.js';

export interface PublishOptions {
  /** The publishing user, for a client's publish; none for the server API's. */
  from?: string;
  /** Publish at most once per key and channel within the idempotency window (`--idempotency-window`). */
  idempotencyKey?: string;
}

/** Backoff between publish attempts on a failing broker: full jitter (`backoffDelay`) in [0, min(MAX, MIN·2^n)). */
const RETRY_MIN_MS = 25;
const RETRY_MAX_MS = 1000;

export class Publisher {
  private closing = false;

  constructor(
    private readonly broker: Broker,
    private readonly namespaces: Namespaces,
    private readonly routing: RoutingStrategy,
    private readonly options: Pick<NodeOptions, 'idempotencyWindow' | 'publishDeadline'>,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /**
   * Publish through the broker. With an idempotency key, at most once per
   * key and channel within the idempotency window, and every failure is
   * retried until the publish deadline (a retry cannot publish twice).
   * Without a key only an unreachable broker is waited for: a failed
   * attempt may have been stored, so it is not repeated. A result means
   * the broker stored it.
   */
  async publish(channel: string, data: unknown, { from, idempotencyKey: key }: PublishOptions = {}): Promise<PublishReceipt> {
    const policy = this.namespaces.of(channel);
    const pub: Omit<BrokerPublication, 'offset' | 'epoch'> =
      from === undefined ? { channel, data, ts: Date.now() } : { channel, data, from, ts: Date.now() };
    const once: Idempotency | undefined = key === undefined ? undefined : { key, windowMs: this.options.idempotencyWindow * 1000 };
    const deadline = Date.now() + this.options.publishDeadline;
    for (let attempt = 0; ; attempt++) {
      let failure: unknown;
      if (this.broker.ready) {
        try {
          const result = await this.metrics.brokerCall('publish', () => this.broker.publish(pub, policy.history, this.routing.route(channel), once));
          if (result.duplicate) this.metrics.idempotentReplays.inc();
          else this.metrics.published.inc({ source: from === undefined ? 'api' : 'client' });
          return result;
        } catch (err) {
          if (!once) {
            this.log.warn({ err, channel }, 'publish failed');
            throw new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable: the message was not accepted (send it with an idempotency key to have it retried safely)');
          }
          failure = err;
        }
      }
      const left = deadline - Date.now();
      if (this.closing || left <= 0) {
        this.log.warn({ err: failure, channel, attempts: attempt + 1 }, 'publish failed until its deadline');
        throw new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable: the message was not accepted');
      }
      this.metrics.publishRetries.inc();
      // The last attempt comes at the deadline.
      await sleep(Math.min(backoffDelay(attempt, RETRY_MIN_MS, RETRY_MAX_MS), left));
    }
  }

  /** The node is closing: a publish waiting for the broker gives up at its next attempt. */
  close(): void {
    this.closing = true;
  }
}
