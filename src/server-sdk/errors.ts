/**
 * The one error the server SDK throws for a failed call. It reuses the
 * protocol's code catalog (`SwitchboardError`), so a business service checks
 * `err.code === 'forbidden'` the same way a browser client does.
 */
import { ErrorCode, httpStatusOf, SwitchboardError } from '../protocol/index.js';

/** A server API call that failed: a refusal (4xx), a server fault, or no node answering before the deadline. */
export class SwitchboardApiError extends SwitchboardError {
  /** The HTTP status of the last answer; 0 when no node answered at all (network error or timeout). */
  readonly status: number;
  /** HTTP requests made for this call (1 when it was not retried). */
  readonly attempts: number;

  constructor(code: ErrorCode, message: string, status: number, attempts: number, options?: { cause?: unknown }) {
    super(code, message);
    this.name = 'SwitchboardApiError';
    this.status = status;
    this.attempts = attempts;
    if (options?.cause !== undefined) Object.defineProperty(this, 'cause', { value: options.cause, enumerable: false });
  }
}

const CODES = new Set<string>(Object.values(ErrorCode));

/** True for a string that is one of the catalog's codes. */
export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === 'string' && CODES.has(v);
}

/** The code for a status when the body names none: the catalog's own pairing, else by class. */
export function codeForStatus(status: number): ErrorCode {
  for (const [code, s] of Object.entries(httpStatusOf)) {
    if (s === status && isErrorCode(code)) return code;
  }
  if (status >= 500) return status === 502 || status === 504 ? ErrorCode.Unavailable : ErrorCode.Internal;
  return ErrorCode.BadRequest;
}
