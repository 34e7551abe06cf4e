/**
 * Delivery of the event log to `--webhook`: this node takes the leases of
 * free partitions (its share of them: the partitions over the live nodes)
 * and, for each partition it holds, POSTs the oldest events in batches,
 * signed, and forgets them once answered 2xx. A partition sends one request
 * at a time, and a failed one is sent again (same events, same ids) after
 * a backoff: the events of a user reach the backend in order, at least once.
 */
import type { Logger } from 'pino';
import type { Broker } from '../../brokers/broker.js';
import type { EventLog, LoggedEvent } from '../../brokers/events.js';
import { WEBHOOK_SIGNATURE_HEADER, type WebhookBody } from '../../protocol/index.js';
import { webhookSignature } from '../../server-sdk/webhook.js';
import { backoffDelay } from '../../shared/backoff.js';
import type { Metrics } from '../metrics.js';
import { detectionMs, type NodeOptions } from '../options.js';

/**
 * How often a node reads the backlog (one store call: events waiting per
 * partition, and the oldest) to update its metrics and start delivering the
 * partitions it holds that have events.
 */
const POLL_MS = 100;
/** Retry backoff after a failed request: full jitter from this window… */
const RETRY_MIN_MS = 200;
/** …doubling up to this one. */
const RETRY_MAX_MS = 5000;
/** Batches one partition sends in a row before letting the others poll. */
const ROUNDS = 20;
/** How long `stop` waits for requests under way. */
const STOP_WAIT_MS = 2000;
/** Dropped events are logged at once, then at most this often (with how many since), so that a long outage does not flood the logs. */
const DROP_LOG_MS = 10_000;

export interface WebhookOptions {
  url: string;
  secret: string;
  /** Events per request at most. */
  batch: number;
  /** A request that takes longer fails (and is retried). */
  timeoutMs: number;
  /** How long a lease lasts without renewal: a dead holder's partitions go to another node after it. */
  leaseMs: number;
  /** Events waiting at most, cluster-wide (see `RecordOptions`). */
  maxPending: number;
}

/** Sends one signed body; resolves true when answered 2xx. */
export type Post = (body: string, signature: string) => Promise<boolean>;

interface Lane {
  held: boolean;
  /** Claims in a row that found the partition's lease free and left it (this node had its share). */
  freeRounds: number;
  busy: boolean;
  /** Failed requests in a row. */
  attempt: number;
  retryAt: number;
}

export class WebhookSender {
  private readonly lanes: Lane[];
  private timer: ReturnType<typeof setInterval> | undefined;
  private ticking = false;
  private stopped = false;
  private nextClaim = 0;
  /** Whether the last request failed: a failure is logged when it starts, and so is the recovery. */
  private failing = false;
  /** Events dropped since the last warning, the last of them, and when that warning was. */
  private drops: { count: number; last?: Omit<LoggedEvent, 'id'>; loggedAt: number } = { count: 0, loggedAt: -Infinity };

  constructor(
    private readonly log: EventLog,
    private readonly nodeId: string,
    private readonly options: WebhookOptions,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    /** How many nodes share the partitions (this one included). */
    private readonly liveNodes: () => number,
    private readonly post: Post = httpPost(options),
  ) {
    this.lanes = Array.from({ length: log.partitions }, () => ({ held: false, freeRounds: 0, busy: false, attempt: 0, retryAt: 0 }));
  }

  /** Log transitions from now on (and `join`/`leave` on the channels `joinLeave` names) and start delivering. */
  start(joinLeave: (channel: string) => boolean = () => false): void {
    this.log.record({
      maxPending: this.options.maxPending,
      joinLeave,
      onOverflow: (event) => {
        this.metrics.eventsDropped.inc();
        this.drops.count++;
        this.drops.last = event;
        this.logDrops(Date.now());
      },
    });
    this.timer = setInterval(() => void this.tick(), POLL_MS);
    this.timer.unref();
  }

  /** Stop delivering and give up the leases, so that another node takes the partitions at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const deadline = Date.now() + STOP_WAIT_MS;
    // A claim under way would take leases again after the release.
    while ((this.ticking || this.lanes.some((l) => l.busy)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await this.log.release(this.nodeId).catch((err: unknown) => this.logger.debug({ err }, 'could not release the event leases'));
  }

  /** Give up the leases of `node`, which the cluster declared dead, so that its partitions are taken over now. */
  async releaseNode(node: string): Promise<void> {
    // Claim at the next poll rather than at the next renewal.
    this.nextClaim = 0;
    await this.log.release(node).catch((err: unknown) => this.logger.debug({ err, node }, 'could not release the event leases of a dead node'));
  }

  /** One poll: renew and take leases when due, read the backlog, start the delivery of each held partition with events. */
  async tick(now = Date.now()): Promise<void> {
    if (this.stopped) return;
    this.logDrops(now);
    if (this.ticking) return;
    this.ticking = true;
    try {
      if (now >= this.nextClaim) {
        const states = await this.log.claim(this.nodeId, this.options.leaseMs, this.share());
        states.forEach((state, p) => {
          const lane = this.lanes[p]!;
          lane.held = state === 'mine';
          lane.freeRounds = state === 'free' ? lane.freeRounds + 1 : 0;
        });
        this.nextClaim = now + this.options.leaseMs / 3;
      }
      const { pending, partitions, oldestTs } = await this.log.backlog();
      this.metrics.eventsPending.set(pending);
      this.metrics.eventsOldestAge.set(oldestTs === null ? 0 : Math.max(0, now - oldestTs) / 1000);
      this.lanes.forEach((lane, p) => {
        if (lane.held && !lane.busy && (partitions[p] ?? 0) > 0 && now >= lane.retryAt) void this.pump(p, lane);
      });
    } catch (err) {
      // The store is unreachable: the next tick tries again, and leases not renewed meanwhile go to whoever can.
      this.logger.debug({ err }, 'event log unreachable');
    } finally {
      this.ticking = false;
    }
  }

  /**
   * How many leases to hold: an even share over the live nodes, plus the
   * partitions nobody took for two claims in a row (nodes without
   * `--webhook` count as live but take none, and their share must not be left).
   */
  private share(): number {
    const even = Math.ceil(this.log.partitions / Math.max(1, this.liveNodes()));
    const held = this.lanes.filter((l) => l.held).length;
    const left = this.lanes.filter((l) => l.freeRounds >= 2).length;
    return Math.max(even, held) + left;
  }

  /** Warn of the events dropped since the last warning, unless one was logged within `DROP_LOG_MS`. */
  private logDrops(now: number): void {
    if (this.drops.count === 0 || now - this.drops.loggedAt < DROP_LOG_MS) return;
    const { count, last } = this.drops;
    this.logger.warn({ dropped: count, last, maxPending: this.options.maxPending }, 'event log full (--webhook-max-pending): events dropped');
    this.drops = { count: 0, loggedAt: now };
  }

  /** Deliver partition `p` while it has events, one request at a time. */
  private async pump(p: number, lane: Lane): Promise<void> {
    lane.busy = true;
    try {
      for (let round = 0; round < ROUNDS && lane.held && !this.stopped; round++) {
        const events = await this.log.read(p, this.options.batch);
        if (events.length === 0) return;
        if (!(await this.send(events))) {
          this.metrics.eventsFailed.inc(events.length);
          lane.retryAt = Date.now() + backoffDelay(lane.attempt++, RETRY_MIN_MS, RETRY_MAX_MS);
          return;
        }
        lane.attempt = 0;
        this.metrics.eventsSent.inc(events.length);
        // Another node holds the partition now (this one stalled past its lease): it sends them again, which the ids make harmless.
        if (!(await this.log.settle(p, this.nodeId, events.map((e) => e.id)))) lane.held = false;
        if (events.length < this.options.batch) return;
      }
    } catch (err) {
      this.logger.debug({ err, partition: p }, 'event log unreachable while delivering');
      lane.retryAt = Date.now() + backoffDelay(lane.attempt++, RETRY_MIN_MS, RETRY_MAX_MS);
    } finally {
      lane.busy = false;
    }
  }

  private async send(events: LoggedEvent[]): Promise<boolean> {
    const body = JSON.stringify({ events } satisfies WebhookBody);
    let ok = false;
    let err: unknown;
    try {
      ok = await this.post(body, webhookSignature(this.options.secret, body));
    } catch (e) {
      err = e;
    }
    if (ok && this.failing) this.logger.info({ url: shownUrl(this.options.url) }, 'webhook answers again');
    if (!ok && !this.failing) {
      this.logger.warn({ err, url: shownUrl(this.options.url) }, 'webhook request failed: events wait in the log and are sent again');
    }
    this.failing = !ok;
    return ok;
  }
}

/** `url` for logs: without a user name or password it may carry. */
function shownUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/** POST with `fetch` (keep-alive), within the timeout; true on 2xx. */
function httpPost(options: Pick<WebhookOptions, 'url' | 'timeoutMs'>): Post {
  return async (body, signature) => {
    const res = await fetch(options.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [WEBHOOK_SIGNATURE_HEADER]: signature },
      body,
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    // Read the answer to the end, so that the connection goes back to the pool.
    await res.arrayBuffer().catch(() => undefined);
    return res.ok;
  };
}

/**
 * The sender of a node with `webhook` in its options, or undefined without
 * one. Throws when the broker keeps no event log (the CLI refuses such
 * settings before, with the same reason).
 */
export function createWebhookSender(
  options: Pick<NodeOptions, 'nodeId' | 'webhook' | 'webhookSecret' | 'webhookBatch' | 'webhookTimeout' | 'webhookMaxPending' | 'heartbeat' | 'deadAfterBeats'>,
  broker: Pick<Broker, 'kind' | 'events'>,
  metrics: Metrics,
  logger: Logger,
  liveNodes: () => number,
): WebhookSender | undefined {
  if (options.webhook === undefined) return undefined;
  if (!options.webhookSecret) throw new Error('webhook needs webhookSecret, the key that signs each request');
  if (!broker.events) {
    throw new Error(`webhook: the ${broker.kind} broker keeps no event log: use memory, a standalone redis:// or amqp://…?store=redis://`);
  }
  const settings: WebhookOptions = {
    url: options.webhook,
    secret: options.webhookSecret,
    batch: options.webhookBatch,
    timeoutMs: options.webhookTimeout,
    // A dead holder's partitions are free again when the cluster declares it dead (`releaseNode`), and at the latest after this.
    leaseMs: detectionMs(options),
    maxPending: options.webhookMaxPending,
  };
  return new WebhookSender(broker.events, options.nodeId, settings, metrics, logger, liveNodes);
}
