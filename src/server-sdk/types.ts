/**
 * What the SDK's calls take and return. The answers' shapes are the server
 * API's own (`src/protocol/api.ts`); the SDK's names for them stay as they
 * were, so that code written against them keeps compiling.
 */
import type {
  BroadcastAnswer,
  DisconnectRequest,
  ErrorBody,
  PublishRequest,
  SendRequest,
  HistoryAnswer,
  HistoryParams,
  NodeSummary,
  PublishAnswer,
  RouteAnswer,
  UserAnswer,
} from '../protocol/index.js';

export type { ErrorBody, PresenceMember, Publication, PublishResult } from '../protocol/index.js';

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

/** The answer to `publish` and `send`: the position, and how the publish was made. */
export interface PublishReceipt extends PublishAnswer {
  /** The key the publish was made with (yours, or the one the SDK generated). */
  idempotencyKey: string;
  /** True when the node answered a repeat (`Idempotent-Replayed: true`): the message was stored by an earlier request. */
  replayed: boolean;
}

/** The answer to `broadcast`: one result per channel, in the order given (its position, or why it failed). */
export interface BroadcastReceipt extends BroadcastAnswer {
  idempotencyKey: string;
}

/** One command of `batch`: a publish or a send, each with its own idempotency key (default: a fresh UUID). */
export type BatchCommand = { publish: PublishRequest } | { send: SendRequest };

/** One command's outcome in `batch`: its position (as `publish` answers it), or why it failed. */
export type BatchItemReceipt = PublishReceipt | { error: ErrorBody; idempotencyKey: string };

/** The answer to `batch`: one outcome per command, in the order given. */
export interface BatchReceipt {
  results: BatchItemReceipt[];
}

/** Whether a user is connected anywhere, and where. */
export type UserStatus = UserAnswer;

/** A page of a channel's history. */
export type HistoryPage = HistoryAnswer;

/** One node of the cluster, as `/api/nodes` lists it (without the dashboard's load figures). */
export type ClusterNode = NodeSummary;

/** Where a user should connect. */
export type UserRoute = RouteAnswer;

export interface HistoryQuery extends HistoryParams {
  signal?: AbortSignal;
}

export interface DisconnectOptions extends Omit<DisconnectRequest, 'user'> {
  signal?: AbortSignal;
}
