/**
 * Waiting, for the server, the server SDK and the brokers (Node only; the
 * browser client keeps to `backoff.ts`): one sleep and one way to bound a
 * promise by a time, instead of a `setTimeout` race written at each use.
 */
export { setTimeout as sleep } from 'node:timers/promises';

/** What a bounded wait rejects with when its time is up. */
export class TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeoutError';
  }
}

/**
 * `p`, or a rejection after `ms` with what `onTimeout` makes (a
 * `TimeoutError` naming `what` by default). `p` itself is not cancelled.
 */
export function within<T>(p: Promise<T>, ms: number, what: string, onTimeout: (message: string) => Error = (m) => new TimeoutError(m)): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Wait for `p` at most `ms`, whatever it does: for polite closes that may
 * never be answered. Its rejection is ignored.
 */
export async function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p.then(noop, noop), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function noop(): void {}

