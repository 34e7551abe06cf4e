/**
 * The server API's requests and answers (SPEC "Server API"): JSON over HTTP.
 * They are written once, here: the server's handlers return them and the
 * server SDK decodes them, so the two sides cannot drift apart.
 */
import type { ErrorBody } from './errors.js';
import type { Publication, PublishResult } from './frames.js';

// ---- requests ----------------------------------------------------------------

/** `POST /api/publish`. */
export interface PublishRequest {
  channel: string;
  data: unknown;
  /** Publish once per key and channel within the idempotency window; or the `Idempotency-Key` header (both: they must agree). */
  idempotencyKey?: string;
}

/** `POST /api/send`: to every connection of `user` (its personal channel). */
export interface SendRequest {
  user: string;
  data: unknown;
  idempotencyKey?: string;
}

/** `POST /api/broadcast`: 1 to `MAX_BROADCAST_CHANNELS` channels, each its own publish under the same key. */
export interface BroadcastRequest {
  channels: readonly string[];
  data: unknown;
  idempotencyKey?: string;
}

/** One command of `POST /api/batch`: a publish to a channel or a send to a user, each with its own idempotency key. */
export type BatchCommand = { publish: PublishRequest } | { send: SendRequest };

/**
 * `POST /api/batch`: 1 to `MAX_BATCH_COMMANDS` commands, run in one request.
 * Commands on one channel (or to one user) are published in the order given;
 * others concurrently.
 */
export interface BatchRequest {
  commands: readonly BatchCommand[];
}

/** `POST /api/disconnect`: close every session of `user` on every node. */
export interface DisconnectRequest {
  user: string;
  /** Close code, 4000–4199. Default 4000 (do not reconnect). */
  code?: number;
  /** At most 120 bytes. */
  reason?: string;
}

/** The query of `GET /api/history/:channel`. */
export interface HistoryParams {
  /** Messages after this offset. Default: the newest `limit`. */
  since?: number;
  /** Default: the namespace's history size; at most `MAX_HISTORY_LIMIT`. */
  limit?: number;
}

/** Channels one `/api/broadcast` may name. */
export const MAX_BROADCAST_CHANNELS = 1000;
/** Commands one `/api/batch` may carry. */
export const MAX_BATCH_COMMANDS = 1000;
/** Messages one `/api/history` page may hold. */
export const MAX_HISTORY_LIMIT = 10_000;

// ---- answers -----------------------------------------------------------------

/**
 * The answer to `/api/publish` and `/api/send`: the message's position, `{}`
 * on a channel without history. A repeat of an idempotency key publishes
 * nothing and answers the first publish's position, with the
 * `REPLAYED_HEADER` set to `true`; the body is the same.
 */
export type PublishAnswer = PublishResult;

/** The header that marks a publish answered from an earlier one with the same idempotency key. */
export const REPLAYED_HEADER = 'idempotent-replayed';

/** One channel of a broadcast: its position, or why its publish failed. */
export type BroadcastResult = PublishAnswer | { error: ErrorBody };

/** The answer to `/api/broadcast`: one result per channel, in the order given. */
export interface BroadcastAnswer {
  results: BroadcastResult[];
}

/**
 * The answer to `/api/batch`: one result per command, in the order given.
 * A command that failed (or was malformed) has its error; the others were
 * published regardless.
 */
export interface BatchAnswer {
  results: BatchResult[];
}

/** One command of a batch: its position (`replayed` when its idempotency key was seen before), or why it failed. */
export type BatchResult = (PublishAnswer & { replayed?: true }) | { error: ErrorBody };

/** One session of a user, and the node that holds it. */
export interface UserSession {
  session: string;
  node: string;
}

/** The answer to `GET /api/users/:user`. */
export interface UserAnswer {
  online: boolean;
  sessions: UserSession[];
}

/** One member of a channel's presence. */
export interface PresenceMember {
  user: string;
  session: string;
  node: string;
}

/** The answer to `GET /api/presence/:channel`. */
export interface PresenceAnswer {
  members: PresenceMember[];
}

/** The answer to `GET /api/history/:channel`. */
export interface HistoryAnswer {
  /** The channel's newest offset (0 when nothing was ever published). */
  offset: number;
  epoch: string;
  messages: Publication[];
}

/** The answer to `POST /api/disconnect`: how many sessions were closed. */
export interface DisconnectAnswer {
  sessions: number;
}

/** The answer to `GET /api/route?user=`: the node `user` should connect to (its owner under hash-ring routing). */
export interface RouteAnswer {
  user: string;
  node: string;
  /** The node's public WebSocket URL. */
  url: string;
}

/** What every node states about itself. */
export interface NodeSummary {
  id: string;
  /** Public address of the node's HTTP/WebSocket port. */
  address: string;
  /** Public WebSocket URL of the node (`--advertise-url`), where clients connect to it directly. */
  url: string;
  /** The node's routing strategy (every node of a cluster must use the same). */
  routing: string;
  connections: number;
  subscriptions: number;
  /** Seconds since the node started. */
  uptime: number;
  ready: boolean;
  draining: boolean;
}

/**
 * A node as its cluster heartbeat describes it and `/api/nodes` lists it.
 * The load figures came later, for the admin dashboard: optional, so that
 * heartbeats of older nodes still parse.
 */
export interface NodeInfo extends NodeSummary {
  /** Broker kind (`memory`, `redis`, `nats`, `amqp`, `ipc`); its health is `ready`. */
  broker?: string;
  /** Client frames received per second (last second). */
  messagesInPerSec?: number;
  /** Message frames written to client sockets per second (last second). */
  messagesOutPerSec?: number;
  /** Delivery latency quantiles over the last seconds, in ms (histogram bucket bounds); absent with no deliveries. */
  latencyP50Ms?: number;
  latencyP99Ms?: number;
}

/** The answer to `GET /api/nodes`: every live node of the cluster. */
export interface NodesAnswer {
  nodes: NodeInfo[];
}

/** The answer to `GET /api/admin/cluster` (docs/dashboard.md): the live nodes, their totals and ring shares. */
export interface AdminClusterAnswer {
  /** The node that answered. */
  node: string;
  /** Milliseconds since the epoch on the answering node. */
  at: number;
  routing: string;
  /** `ringShare`, under hash-ring routing only: the fraction of user ids the node owns. */
  nodes: Array<NodeInfo & { ringShare?: number }>;
  totals: {
    nodes: number;
    ready: number;
    connections: number;
    subscriptions: number;
    messagesInPerSec: number;
    messagesOutPerSec: number;
  };
}

/** The body of every refusal, with the code's HTTP status. */
export interface ErrorAnswer {
  error: ErrorBody;
}

/** Any successful answer of the server API. */
export type ApiAnswer =
  | PublishAnswer
  | BroadcastAnswer
  | BatchAnswer
  | UserAnswer
  | PresenceAnswer
  | HistoryAnswer
  | DisconnectAnswer
  | RouteAnswer
  | NodesAnswer
  | AdminClusterAnswer;
