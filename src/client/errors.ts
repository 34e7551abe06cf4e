/**
 * The errors the client SDK reports. Every rejected promise and every `error`
 * event carries a `ClientError` whose `code` is either a protocol error code
 * (from the server's `reply.error`) or one of the client's own codes below.
 */
import type { ErrorCode } from '../protocol/index.js';

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
