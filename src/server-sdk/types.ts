/** What the server API answers (SPEC "Server API"), as the SDK returns it. */
import type { ErrorBody, Publication, PublishResult } from '../protocol/index.js';

export type { ErrorBody, Publication, PublishResult };

/** Options of one publish, send or broadcast. */
export interface PublishOptions {
  /**
   * Publishes once per channel within the node's `--idempotency-window`
   * (600 s): a repeat answers the first `{offset, epoch}`. 1–128 printable
   * ASCII characters without spaces. Default: a fresh `crypto.randomUUID()`,
   * so the SDK's own retries can never publish twice; pass your own (e.g. a
   * job step id) to make *your* retries safe too.
   */
  idempotencyKey?: string;
  /** Aborts the call. */
  signal?: AbortSignal;
}

export interface CallOptions {
  signal?: AbortSignal;
}

/** The answer to `publish` and `send`. */
export interface PublishReceipt extends PublishResult {
  /** The key the publish was made with (yours, or the one the SDK generated). */
  idempotencyKey: string;
  /** True when the node answered a repeat (`Idempotent-Replayed: true`): the message was stored by an earlier request. */
  replayed: boolean;
}

export interface BroadcastReceipt {
  /** One per channel, in the order given: its position, or why it failed. */
  results: Array<PublishResult | { error: ErrorBody }>;
  idempotencyKey: string;
}

export interface UserStatus {
  online: boolean;
  sessions: Array<{ session: string; node: string }>;
}

export interface PresenceMember {
  user: string;
  session: string;
  node: string;
}

export interface HistoryPage {
  /** The channel's newest offset (0 when nothing was ever published). */
  offset: number;
  epoch: string;
  messages: Publication[];
}

export interface HistoryQuery {
  /** Messages after this offset. Default: the newest `limit`. */
  since?: number;
  limit?: number;
  signal?: AbortSignal;
}

export interface DisconnectOptions {
  /** Close code, 4000–4199. Default 4000 (do not reconnect). */
  code?: number;
  reason?: string;
  signal?: AbortSignal;
}

/** One node of the cluster, as `/api/nodes` lists it. */
export interface ClusterNode {
  id: string;
  address: string;
  url: string;
  routing: string;
  connections: number;
  subscriptions: number;
  uptime: number;
  ready: boolean;
  draining: boolean;
}

/** Where a user should connect. */
export interface UserRoute {
  user: string;
  node: string;
  url: string;
}
