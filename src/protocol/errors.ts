/**
 * The catalog of error codes and close codes of the wire protocol (SPEC
 * "Client connection"). Every error the gateway reports to a client or to a
 * business service uses one of these codes; nothing else invents its own.
 */

/** Error codes carried by `reply.error.code`, `error` frames and the server API. */
export const ErrorCode = {
  BadRequest: 'bad_request',
  Unauthorized: 'unauthorized',
  Forbidden: 'forbidden',
  NotFound: 'not_found',
  TooLarge: 'too_large',
  RateLimited: 'rate_limited',
  Unavailable: 'unavailable',
  Internal: 'internal',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The HTTP status that goes with each error code on the server API. */
export const httpStatusOf: Readonly<Record<ErrorCode, number>> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

/** An error that carries a protocol code; thrown inside the server, sent as `{code, message}`. */
export class SwitchboardError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'SwitchboardError';
    this.code = code;
  }
  toBody(): ErrorBody {
    return { code: this.code, message: this.message };
  }
}

/** The error body for anything thrown: its own for a `SwitchboardError`, `internal` for the rest (never leaking details). */
export function toErrorBody(err: unknown): ErrorBody {
  return err instanceof SwitchboardError ? err.toBody() : { code: ErrorCode.Internal, message: 'internal error' };
}

/**
 * WebSocket close codes. 4000–4099: do not reconnect. 4100–4199: reconnect
 * with backoff. 1009: a frame over the size limit (set by the WebSocket layer).
 */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  TooLarge: 1009,
  /** Closed by the server API or the application; do not reconnect. */
  Disconnected: 4000,
  Unauthorized: 4001,
  Forbidden: 4003,
  PolicyViolation: 4008,
  Draining: 4100,
  SlowConsumer: 4101,
  Moved: 4102,
  HeartbeatTimeout: 4103,
  /** The node could not be sure the connection got every message (broker state lost): reconnect and recover. */
  StateLost: 4104,
  /** The session's token expired without a `refresh`: reconnect with a fresh token. */
  TokenExpired: 4105,
  RateLimited: 4129,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** True when a client must not reconnect after this close code (4000–4099). */
export function isTerminalClose(code: number): boolean {
  return code >= 4000 && code <= 4099;
}
