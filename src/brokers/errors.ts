/**
 * The one error type of broker faults. Every broker and link rejects with a
 * `BrokerError` whose `code` says what kind of fault it is, so callers can
 * tell "try again later" from "this broker is gone" without reading
 * messages. The messages stay what they were: they name the backend.
 */

/**
 * - `unavailable`: the backend cannot be reached now (it may come back);
 * - `timeout`: the backend did not answer in time;
 * - `closed`: the broker was closed (it never comes back);
 * - `not-started`: the broker was used before `start`.
 */
export type BrokerErrorCode = 'unavailable' | 'timeout' | 'closed' | 'not-started';

export class BrokerError extends Error {
  constructor(
    readonly code: BrokerErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'BrokerError';
  }
}

/** A closed broker's rejection. */
export function closedError(message = 'broker closed'): BrokerError {
  return new BrokerError('closed', message);
}

/** A broker used before `start` (or after `close`, where the brokers say "not started"). */
export function notStartedError(): BrokerError {
  return new BrokerError('not-started', 'broker not started');
}
