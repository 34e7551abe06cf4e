/**
 * Prometheus metrics of one node (prom-client), in a registry of its own so
 * that several nodes in one process do not share counters. Every name starts
 * with `switchboard_`.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CloseCode, type ClientFrameType, type ServerFrame } from '../protocol/index.js';
import { CONTROL_REJECT_REASONS } from '../cluster/validate.js';
import { QUOTA_NAMES } from './core/quotas.js';

/** The broker calls whose round trip is timed. */
export type BrokerOperation = 'publish' | 'history';
const BROKER_OPERATIONS: readonly BrokerOperation[] = ['publish', 'history'];

/** Every client frame type (a `Record` so that a new type in the protocol fails to compile here until it is listed). */
export const CLIENT_FRAME_TYPES = Object.keys({
  subscribe: true,
  unsubscribe: true,
  publish: true,
  send: true,
  ack: true,
  ping: true,
  pong: true,
  refresh: true,
  rpc: true,
} satisfies Record<ClientFrameType, true>);

/** Every server frame type, likewise. */
const SERVER_FRAME_TYPES = Object.keys({
  welcome: true,
  message: true,
  reply: true,
  error: true,
  ping: true,
  pong: true,
  disconnect: true,
  join: true,
  leave: true,
} satisfies Record<ServerFrame['type'], true>);

/** Reasons a connection is refused before the upgrade (see `rejected`). */
const REJECT_REASONS = [
  'draining',
  'not_ready',
  'max_connections',
  'ip_rate',
  'connections_per_ip',
  'connections_per_user',
  'handshake_rate',
  'handshakes_in_flight',
  'unauthorized',
  'forbidden',
  'connect_hook',
  'bad_request',
  'not_found',
  'origin',
  'internal',
];

/** Close codes the server itself closes with (4xxx; 1000/1001/1009 are not counted as server decisions). */
const SERVER_CLOSE_CODES = Object.values(CloseCode).filter((code) => code >= 4000);

export class Metrics {
  readonly registry = new Registry();
  /** Open client connections. */
  readonly connections: Gauge;
  /** WebSocket handshakes admitted whose `welcome` is not sent yet (admission's in-flight count), read when scraped. */
  readonly handshakesInFlight: Gauge;
  private readHandshakes: () => number = () => 0;
  /** Channel subscriptions held by this node's sessions, personal channels included. */
  readonly subscriptions: Gauge;
  /** Client frames received, by frame type. */
  readonly messagesIn: Counter<'type'>;
  /** Publications accepted by this node, by source (`client` or `api`). */
  readonly published: Counter<'source'>;
  /** `message` frames written to client sockets. */
  readonly delivered: Counter;
  /** Frames written to client sockets, by type (`message` included). */
  readonly framesOut: Counter<'type'>;
  /** Publications this node received from the broker: `used` when it had local subscribers, `unused` when it did not (wasted by the routing). */
  readonly brokerReceived: Counter<'use'>;
  /** From publish accepted to the message written to the last local socket. */
  readonly latency: Histogram;
  /** Subscriptions with `since`: recovered in full, or not. */
  readonly recoveries: Counter<'result'>;
  /**
   * Connections refused before the upgrade, by reason: `draining`,
   * `not_ready`, `max_connections`, `ip_rate`, `handshake_rate`,
   * `handshakes_in_flight` (admission), `unauthorized`, `bad_request`,
   * `not_found`, `origin` (a browser page of an origin not allowed), `internal`.
   */
  readonly rejected: Counter<'reason'>;
  /** Client actions refused by a quota (core/quotas.ts), by quota. */
  readonly quotaExceeded: Counter<'quota'>;
  /** Connections closed by the server, by close code. */
  readonly disconnects: Counter<'code'>;
  /** Gaps in a channel's offsets seen on arrival from the broker, each filled from history. */
  readonly gaps: Counter;
  /** Sessions moved to their owner node (hash-ring routing with redirects, close 4102). */
  readonly moved: Counter;
  /** Publish attempts the node retried after a broker failure, and publishes answered from an idempotency key. */
  readonly publishRetries: Counter;
  readonly idempotentReplays: Counter;
  /** Acknowledged positions written to the broker, by result. */
  readonly acksSaved: Counter<'result'>;
  /** Error replies sent to clients and the server API, by error code. */
  readonly errors: Counter<'code'>;
  /** Time of one broker call (publish, history read), by operation, failed calls included. */
  readonly brokerRoundTrip: Histogram<'operation'>;
  /** Broker calls that failed (threw or rejected), by operation. */
  readonly brokerErrors: Counter<'operation'>;
  /** Events this node delivered to the webhook (answered 2xx). */
  readonly eventsSent: Counter;
  /** Events in webhook requests that failed (each retry counts again). */
  readonly eventsFailed: Counter;
  /** Events not logged because the log was full (`--webhook-max-pending`). */
  readonly eventsDropped: Counter;
  /** Events waiting for delivery, cluster-wide, as this node last read the log. */
  readonly eventsPending: Gauge;
  /** Age of the oldest waiting event, as this node last read the log. */
  readonly eventsOldestAge: Gauge;
  /** Records an ingest read (outbox rows claimed, Kafka records fetched), by source (`--ingest`, password hidden). */
  readonly ingestRead: Counter<'source'>;
  /** Ingested records finished, by source and outcome: `published`, `duplicate` (published before: skipped), `dead` (not a valid command). */
  readonly ingestRecords: Counter<'source' | 'outcome'>;
  /** Ingest rounds that failed (the source or the broker unreachable, a publish refused for a reason that may pass). */
  readonly ingestFailures: Counter<'source'>;
  /** Age of the oldest record not yet published, as last looked (0: none). */
  readonly ingestOldest: Gauge<'source'>;
  /** Kafka: records behind the end of each partition this node reads. */
  readonly ingestLag: Gauge<'source' | 'partition'>;
  /** 1 while an ingest fails or its oldest record is older than its `stuck` bound. */
  readonly ingestStuck: Gauge<'source'>;
  /** Backend hook requests, by hook and outcome (`ok`, a refusal's error code, `busy` past `--hook-max-in-flight`). */
  readonly hookRequests: Counter<'hook' | 'outcome'>;
  /** Time of one hook request that was sent, by hook, failed ones included. */
  readonly hookDuration: Histogram<'hook'>;
  /** Control messages from other nodes refused, by reason (cluster/validate.ts, cluster/seal.ts). */
  readonly controlRejected: Counter<'reason'>;

  constructor(labels: { node: string }) {
    const registers = [this.registry];
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry, prefix: 'switchboard_' });
    this.connections = new Gauge({ name: 'switchboard_connections', help: 'Open client connections', registers });
    const readHandshakes = (): number => this.readHandshakes();
    this.handshakesInFlight = new Gauge({
      name: 'switchboard_handshakes_in_flight',
      help: 'WebSocket handshakes admitted whose welcome is not sent yet',
      registers,
      collect() {
        this.set(readHandshakes());
      },
    });
    this.subscriptions = new Gauge({
      name: 'switchboard_subscriptions',
      help: 'Channel subscriptions of connected sessions, personal channels included',
      registers,
    });
    this.messagesIn = new Counter({
      name: 'switchboard_messages_in_total',
      help: 'Client frames received, by type',
      labelNames: ['type'],
      registers,
    });
    this.framesOut = new Counter({
      name: 'switchboard_frames_out_total',
      help: 'Frames written to client sockets, by type (message frames are also switchboard_messages_out_total)',
      labelNames: ['type'],
      registers,
    });
    this.published = new Counter({
      name: 'switchboard_publications_total',
      help: 'Publications accepted by this node, by source',
      labelNames: ['source'],
      registers,
    });
    this.delivered = new Counter({
      name: 'switchboard_messages_out_total',
      help: 'Message frames written to client sockets',
      registers,
    });
    this.brokerReceived = new Counter({
      name: 'switchboard_broker_publications_received_total',
      help: 'Publications received from the broker, by whether the node had local subscribers for them (used) or not (unused)',
      labelNames: ['use'],
      registers,
    });
    this.latency = new Histogram({
      name: 'switchboard_delivery_latency_seconds',
      help: 'Time from publish accepted to the message written to the local sockets',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.recoveries = new Counter({
      name: 'switchboard_recoveries_total',
      help: 'Subscriptions with a recovery position, by result (recovered or failed)',
      labelNames: ['result'],
      registers,
    });
    this.rejected = new Counter({
      name: 'switchboard_connections_rejected_total',
      help: 'Connections refused before the WebSocket upgrade, by reason (draining, not_ready, max_connections, ip_rate, connections_per_ip, connections_per_user, handshake_rate, handshakes_in_flight, unauthorized, bad_request, not_found, origin, internal)',
      labelNames: ['reason'],
      registers,
    });
    this.quotaExceeded = new Counter({
      name: 'switchboard_quota_exceeded_total',
      help: 'Client actions refused by a quota, by quota (connection_publish_bytes, user_publish_bytes, connection_new_channels, user_new_channels, replay_bytes, subscriptions_per_node, connections_per_ip, connections_per_user)',
      labelNames: ['quota'],
      registers,
    });
    this.disconnects = new Counter({
      name: 'switchboard_disconnects_total',
      help: 'Connections closed by the server, by close code',
      labelNames: ['code'],
      registers,
    });
    this.gaps = new Counter({
      name: 'switchboard_gaps_filled_total',
      help: 'Publications that arrived from the broker after a gap in their channel, which was then filled from history',
      registers,
    });
    this.moved = new Counter({
      name: 'switchboard_sessions_moved_total',
      help: 'Sessions closed with 4102 and sent to the node that owns their user (hash-ring routing)',
      registers,
    });
    this.publishRetries = new Counter({
      name: 'switchboard_publish_retries_total',
      help: 'Publish attempts retried after the broker failed or was unreachable',
      registers,
    });
    this.idempotentReplays = new Counter({
      name: 'switchboard_idempotent_replays_total',
      help: 'Publishes answered with the result of an earlier publish with the same idempotency key',
      registers,
    });
    this.acksSaved = new Counter({
      name: 'switchboard_acks_saved_total',
      help: 'Acknowledged personal-channel positions written to the broker (ok) or not (failed, kept for the next write)',
      labelNames: ['result'],
      registers,
    });
    this.errors = new Counter({
      name: 'switchboard_errors_total',
      help: 'Error replies sent, by error code',
      labelNames: ['code'],
      registers,
    });
    this.brokerRoundTrip = new Histogram({
      name: 'switchboard_broker_round_trip_seconds',
      help: 'Time of one broker call, by operation (publish, history), failed calls included',
      labelNames: ['operation'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.brokerErrors = new Counter({
      name: 'switchboard_broker_errors_total',
      help: 'Broker calls that failed, by operation (publish, history)',
      labelNames: ['operation'],
      registers,
    });
    this.eventsSent = new Counter({ name: 'switchboard_events_sent_total', help: 'Events delivered to the webhook (answered 2xx) by this node', registers });
    this.eventsFailed = new Counter({
      name: 'switchboard_events_failed_total',
      help: 'Events in webhook requests that failed or timed out (each retry counts again)',
      registers,
    });
    this.eventsDropped = new Counter({
      name: 'switchboard_events_dropped_total',
      help: 'Events this node did not log because the log held --webhook-max-pending',
      registers,
    });
    this.eventsPending = new Gauge({ name: 'switchboard_events_pending', help: 'Events waiting for the webhook, cluster-wide', registers });
    this.eventsOldestAge = new Gauge({
      name: 'switchboard_events_oldest_pending_seconds',
      help: 'Age of the oldest event waiting for the webhook (0: none waits)',
      registers,
    });
    this.ingestRead = new Counter({ name: 'switchboard_ingest_read_total', help: 'Records an ingest read: outbox rows claimed, Kafka records fetched', labelNames: ['source'], registers });
    this.ingestRecords = new Counter({
      name: 'switchboard_ingest_records_total',
      help: 'Ingested records finished, by outcome: published, duplicate (published before, skipped), dead (not a valid command)',
      labelNames: ['source', 'outcome'],
      registers,
    });
    this.ingestFailures = new Counter({ name: 'switchboard_ingest_failures_total', help: 'Ingest rounds that failed and will be retried', labelNames: ['source'], registers });
    this.ingestOldest = new Gauge({
      name: 'switchboard_ingest_oldest_seconds',
      help: 'Age of the oldest record an ingest has not published yet (0: none)',
      labelNames: ['source'],
      registers,
    });
    this.ingestLag = new Gauge({
      name: 'switchboard_ingest_lag_records',
      help: 'Kafka ingest: records behind the end of each partition this node reads',
      labelNames: ['source', 'partition'],
      registers,
    });
    this.ingestStuck = new Gauge({
      name: 'switchboard_ingest_stuck',
      help: '1 while an ingest fails or its oldest record waits longer than its stuck bound',
      labelNames: ['source'],
      registers,
    });
    this.hookRequests = new Counter({
      name: 'switchboard_hook_requests_total',
      help: 'Backend hook requests, by hook and outcome (ok, an error code, busy)',
      labelNames: ['hook', 'outcome'],
      registers,
    });
    this.hookDuration = new Histogram({
      name: 'switchboard_hook_duration_seconds',
      help: 'Time of one backend hook request, by hook, failed ones included',
      labelNames: ['hook'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.controlRejected = new Counter({
      name: 'switchboard_control_rejected_total',
      help: 'Control messages from other nodes refused: malformed, invalid, unsigned, bad_signature, stale, replayed',
      labelNames: ['reason'],
      registers,
    });
    this.initLabels();
  }

  /** Where `switchboard_handshakes_in_flight` is read from (the node's WebSocket upgrade). */
  countHandshakes(read: () => number): void {
    this.readHandshakes = read;
  }

  /**
   * Time `call` as one broker round trip of `operation`, counting it as a
   * broker error when it throws. The error is rethrown unchanged: callers
   * keep their own retry and reply logic.
   */
  async brokerCall<T>(operation: BrokerOperation, call: () => Promise<T>): Promise<T> {
    const end = this.brokerRoundTrip.startTimer({ operation });
    try {
      return await call();
    } catch (err) {
      this.brokerErrors.inc({ operation });
      throw err;
    } finally {
      end();
    }
  }

  /**
   * Export every known label value at 0 from the start: a series that only
   * appears after its first event breaks `rate()` and `increase()` over that
   * event, and an alert on a series that does not exist yet never fires.
   * Not `errors`: tests read any `code="internal"` series as an internal error answered.
   */
  private initLabels(): void {
    for (const type of CLIENT_FRAME_TYPES) this.messagesIn.inc({ type }, 0);
    for (const type of SERVER_FRAME_TYPES) this.framesOut.inc({ type }, 0);
    for (const source of ['client', 'api']) this.published.inc({ source }, 0);
    for (const use of ['used', 'unused']) this.brokerReceived.inc({ use }, 0);
    for (const result of ['recovered', 'failed']) this.recoveries.inc({ result }, 0);
    for (const result of ['ok', 'failed']) this.acksSaved.inc({ result }, 0);
    for (const reason of REJECT_REASONS) this.rejected.inc({ reason }, 0);
    for (const reason of CONTROL_REJECT_REASONS) this.controlRejected.inc({ reason }, 0);
    for (const quota of QUOTA_NAMES) this.quotaExceeded.inc({ quota }, 0);
    for (const code of SERVER_CLOSE_CODES) this.disconnects.inc({ code: String(code) }, 0);
    for (const operation of BROKER_OPERATIONS) {
      this.brokerRoundTrip.zero({ operation });
      this.brokerErrors.inc({ operation }, 0);
    }
    // The hooks built so far (hooks/client.ts names the others the SPEC has).
    for (const hook of ['connect', 'refresh', 'rpc', 'subscribe', 'publish']) {
      this.hookRequests.inc({ hook, outcome: 'ok' }, 0);
      this.hookDuration.zero({ hook });
    }
  }
}
