/**
 * Node-to-node control messages, typed as a discriminated union keyed by
 * `type`. The sender's id (`from`) is filled in one place: `Cluster.send`.
 */
import type { ErrorBody } from '../protocol/index.js';

/** What a node says about itself in heartbeats and what `/api/nodes` lists. */
export interface NodeInfo {
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
  // Added for the admin dashboard; optional so that heartbeats of older nodes still parse.
  /** Broker kind (`memory`, `redis`, `nats`, `amqp`); its health is `ready`. */
  broker?: string;
  /** Client frames received per second (last second). */
  messagesInPerSec?: number;
  /** Message frames written to client sockets per second (last second). */
  messagesOutPerSec?: number;
  /** Delivery latency quantiles over the last seconds, in ms (histogram bucket bounds); absent with no deliveries. */
  latencyP50Ms?: number;
  latencyP99Ms?: number;
}

/** Requests one node sends to others (`/api/disconnect` of a user cluster-wide). */
export type ClusterRequest = { kind: 'disconnect'; user: string; code: number; reason: string };

export type ControlBody =
  | { type: 'heartbeat'; info: NodeInfo }
  | { type: 'leave' }
  | { type: 'request'; id: number; request: ClusterRequest }
  | { type: 'response'; id: number; result?: unknown; error?: ErrorBody };

export type ControlMessage = ControlBody & { from: string };

const TYPES = new Set(['heartbeat', 'leave', 'request', 'response']);

/** Parse a control payload; undefined for anything malformed (it is counted and dropped by the caller). */
export function decodeControl(payload: string): ControlMessage | undefined {
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const m = v as { type?: unknown; from?: unknown };
  if (typeof m.from !== 'string' || typeof m.type !== 'string' || !TYPES.has(m.type)) return undefined;
  return v as ControlMessage;
}
