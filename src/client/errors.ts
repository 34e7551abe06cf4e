/**
 * The errors the client SDK reports. Every rejected promise and every `error`
 * event carries a `ClientError` whose `code` is either a protocol error code
 * (from the server's `reply.error`) or one of the client's own codes below.
 */
import { CloseCode, type ErrorCode } from '../protocol/index.js';

/** Codes the client itself produces, besides the protocol's `ErrorCode`s. */
export const LocalErrorCode = {
  /** No reply within `requestTimeout`. */
  Timeout: 'timeout',
  /** The connection dropped (or was never up) before a reply came. */
  Disconnected: 'disconnected',
  /** More than `maxQueuedRequests` requests waited for a connection. */
  QueueFull: 'queue_full',
  /** The server sent a frame the client could not understand. */
  BadFrame: 'bad_frame',
  /** The WebSocket reported an error (usually followed by a close). */
  Transport: 'transport',
  /** `getToken` rejected; the client retries with backoff. */
  Token: 'token',
  /** `resolveUrl` rejected, timed out or gave a bad URL; the client used `url` instead. */
  ResolveUrl: 'resolve_url',
  /** An application event listener threw; the error is in `cause`. */
  Listener: 'listener',
  /** The server closed the connection for a fault rather than a routine move (a `ServerCloseError`). */
  ServerClose: 'server_close',
} as const;

export type LocalErrorCode = (typeof LocalErrorCode)[keyof typeof LocalErrorCode];

export type ClientErrorCode = ErrorCode | LocalErrorCode;

/** An error with a stable `code`; `message` is for humans. */
export class ClientError extends Error {
  readonly code: ClientErrorCode;
  constructor(code: ClientErrorCode, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ClientError';
    this.code = code;
  }
}

/**
 * Closes that are routine moves rather than faults: a normal close, a node
 * going away or draining, a redirect to the user's owner node, state lost
 * (reconnect and recover), a service restart; and 1005/1006, a connection
 * lost without a close from the server (a network fault, not the server's
 * word).
 */
const ROUTINE_CLOSES: ReadonlySet<number> = new Set<number>([
  CloseCode.Normal,
  CloseCode.GoingAway,
  1005,
  1006,
  1012,
  1013,
  CloseCode.Draining,
  CloseCode.Moved,
  CloseCode.StateLost,
]);

/**
 * The server closed the connection for a fault: a limit the client broke
 * (4129 rate limited, 4101 slow consumer, 4008 abuse, 1009 frame too
 * large), an expired token (4105), a refusal (4001, 4003), a close by
 * the server API (4000), an error (1011). `code` is `server_close`; `closeCode` says which.
 */
export class ServerCloseError extends ClientError {
  /** The close code, from the server's `disconnect` frame or the socket. */
  readonly closeCode: number;
  /** The server's reason (for 4129, the setting the client went over). */
  readonly reason: string;
  /** Whether the client reconnects by itself. */
  readonly reconnect: boolean;
  constructor(closeCode: number, reason: string, reconnect: boolean) {
    super(LocalErrorCode.ServerClose, `the server closed the connection: ${closeCode}${reason ? ` ${reason}` : ''}`);
    this.name = 'ServerCloseError';
    this.closeCode = closeCode;
    this.reason = reason;
    this.reconnect = reconnect;
  }
}

/** The error a close reports, or undefined for a routine one. */
export function serverCloseError(closeCode: number, reason: string, reconnect: boolean): ServerCloseError | undefined {
  return ROUTINE_CLOSES.has(closeCode) ? undefined : new ServerCloseError(closeCode, reason, reconnect);
}
