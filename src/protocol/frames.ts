/**
 * The frames of the `switchboard.v1` WebSocket protocol, typed as
 * discriminated unions keyed by `type` (SPEC "Client connection").
 */
import type { ErrorBody } from './errors.js';

export const SUBPROTOCOL = 'switchboard.v1';

/** A position in a channel's history. */
export interface StreamPosition {
  offset: number;
  epoch: string;
}

/** One message of a channel, as delivered live and as returned from history. */
export interface Publication {
  channel: string;
  data: unknown;
  /** Absent on channels without history. */
  offset?: number;
  epoch?: string;
  /** The publisher's user id; absent for publications from the server API. */
  from?: string;
}

// ---- client → server -------------------------------------------------------

export interface SubscribeFrame {
  type: 'subscribe';
  id: number;
  channel: string;
  since?: StreamPosition;
}
export interface UnsubscribeFrame {
  type: 'unsubscribe';
  id: number;
  channel: string;
}
export interface PublishFrame {
  type: 'publish';
  id: number;
  channel: string;
  data: unknown;
}
export interface SendFrame {
  type: 'send';
  id: number;
  user: string;
  data: unknown;
}
export interface AckFrame {
  type: 'ack';
  channel: string;
  offset: number;
}
export interface PingFrame {
  type: 'ping';
  id: number;
}
export interface PongFrame {
  type: 'pong';
}
/** A new token for the session before its current one expires (`welcome.expires`). */
export interface RefreshFrame {
  type: 'refresh';
  id: number;
  token: string;
}
/** The reply to `refresh`: the session's new expiry, absent when the new token has no `exp`. */
export interface RefreshResult {
  expires?: number;
}

/** A call of a method of the business backend (`--rpc-hook`); the reply's result is `{data}`, the backend's answer. */
export interface RpcFrame {
  type: 'rpc';
  id: number;
  method: string;
  data: unknown;
}
/** The reply to `rpc`. */
export interface RpcResult {
  data: unknown;
}

export type ClientFrame =
  | SubscribeFrame
  | UnsubscribeFrame
  | PublishFrame
  | SendFrame
  | AckFrame
  | PingFrame
  | PongFrame
  | RefreshFrame
  | RpcFrame;

export type ClientFrameType = ClientFrame['type'];

/**
 * The identity of a connection whose upgrade named nobody (no `?token=`, no
 * `Authorization` header): its first frame, so that browsers keep tokens out
 * of URLs. Only valid as the first frame; it gets no reply (the `welcome`
 * answers it, or a close with 4001).
 */
export interface ConnectFrame {
  type: 'connect';
  token: string;
}

// ---- server → client -------------------------------------------------------

export interface SubscribeResult {
  channel: string;
  /** The channel's current top offset once `messages` are applied (absent without history). */
  offset?: number;
  epoch?: string;
  /** False when what was missed since `since` could not be returned in full; `messages` is then empty. */
  recovered: boolean;
  messages: Publication[];
}

export interface PublishResult {
  offset?: number;
  epoch?: string;
}

export interface WelcomeFrame {
  type: 'welcome';
  session: string;
  node: string;
  user: string;
  /** The personal channel, `user:<user>`. */
  channel: string;
  offset: number;
  epoch: string;
  recovered: boolean;
  messages: Publication[];
  /** Heartbeat interval in seconds. */
  ping: number;
  /** When the session's identity expires (the token's `exp`, Unix seconds): `refresh` before then, or it is closed with 4105. */
  expires?: number;
}

export interface MessageFrame extends Publication {
  type: 'message';
}

export interface ReplyOk<R = unknown> {
  type: 'reply';
  id: number;
  result: R;
}
export interface ReplyError {
  type: 'reply';
  id: number;
  error: ErrorBody;
}
export type ReplyFrame<R = unknown> = ReplyOk<R> | ReplyError;

/** Sent for a malformed frame that has no usable `id` to reply to. */
export interface ErrorFrame {
  type: 'error';
  error: ErrorBody;
}

export interface ServerPingFrame {
  type: 'ping';
}
export interface ServerPongFrame {
  type: 'pong';
  id: number;
}
export interface DisconnectFrame {
  type: 'disconnect';
  code: number;
  reason: string;
  reconnect: boolean;
  /**
   * With code 4102 (moved, hash-ring routing): the WebSocket URL of the node
   * that owns this user, where the client should reconnect at once.
   */
  url?: string;
}

/**
 * A session subscribed to (`join`) or left (`leave`) a channel of a
 * namespace with `joinLeave`: sent to the channel's other subscribers.
 */
export interface MemberFrame {
  type: 'join' | 'leave';
  channel: string;
  user: string;
  session: string;
}

export type ServerFrame =
  | WelcomeFrame
  | MessageFrame
  | ReplyFrame
  | ErrorFrame
  | ServerPingFrame
  | ServerPongFrame
  | DisconnectFrame
  | MemberFrame;
