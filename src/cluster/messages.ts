/**
 * Node-to-node control messages, typed as a discriminated union keyed by
 * `type`. The sender's id (`from`) is filled in one place: `Cluster.send`;
 * what arrives is checked field by field in validate.ts.
 */
import type { DisconnectRequest, ErrorBody, MemberFrame, NodeInfo } from '../protocol/index.js';

/** What a node says about itself in heartbeats; `/api/nodes` lists the same, so it is one of the server API's shapes. */
export type { NodeInfo };

/** Requests one node sends to others (`/api/disconnect` of a user cluster-wide). */
export type ClusterRequest = { kind: 'disconnect' } & Required<DisconnectRequest>;

export type ControlBody =
  | { type: 'heartbeat'; info: NodeInfo }
  | { type: 'leave' }
  /** To a node declared dead that beats again: its entries were dropped (`Cluster`). */
  | { type: 'swept' }
  | { type: 'request'; id: number; request: ClusterRequest }
  | { type: 'response'; id: number; result?: unknown; error?: ErrorBody }
  /** A session joined or left a channel of a namespace with `joinLeave`: every node tells its local subscribers. */
  | { type: 'member'; frame: MemberFrame };

export type ControlMessage = ControlBody & { from: string };
