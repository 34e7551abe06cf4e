/**
 * When and where the client's next connection attempt goes: after a backoff
 * that grows with each failure since the last `welcome`, or at once to the
 * node a redirect named, with a limit on redirects in a row.
 */
import { backoffDelay } from '../shared/backoff.js';
import type { ResolvedOptions } from './options.js';

/**
 * Redirects (4102 with a URL) followed at once in a row without a `welcome`;
 * the next one is not followed but retried with backoff on the normal URL,
 * so two nodes that disagree about the owner cannot make a tight loop.
 */
export const MAX_REDIRECTS = 3;

/** The options the schedule reads. */
export type ReconnectOptions = Pick<ResolvedOptions, 'minReconnectDelay' | 'maxReconnectDelay' | 'random'>;

export class ReconnectSchedule {
  /** Failed attempts since the last `welcome`: the backoff exponent. */
  private attempt = 0;
  /** Redirects followed since the last `welcome` or the last one not followed. */
  private redirects = 0;
  /** Where the next attempt goes instead of `url`/`resolveUrl`: set by a followed redirect, used once. */
  private target: string | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** `retry` starts the next attempt when its time comes. */
  constructor(
    private readonly opts: ReconnectOptions,
    private readonly retry: () => void,
  ) {}

  /** The redirect the next attempt follows, if any. */
  get redirect(): string | undefined {
    return this.target;
  }

  /** A fresh `connect()` or a `welcome`: failures and redirects count from zero again. */
  reset(): void {
    this.attempt = 0;
    this.redirects = 0;
  }

  /**
   * Whether one more redirect in a row may be followed (it is counted). When
   * not, the count restarts: this drop backs off, and after it redirects are
   * followed again.
   */
  followRedirect(): boolean {
    if (this.redirects >= MAX_REDIRECTS) {
      this.redirects = 0;
      return false;
    }
    this.redirects++;
    return true;
  }

  /** The redirect for the attempt starting now, if any; it is used once. */
  takeRedirect(): string | undefined {
    const target = this.target;
    this.target = undefined;
    return target;
  }

  /**
   * Drop a pending retry. `redirect` is where the next attempt goes; without
   * it, a redirect still waiting for its attempt is forgotten.
   */
  cancel(redirect?: string): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.target = redirect;
  }

  /** Retry later: at once to a redirect, else after the backoff delay of the next failure. */
  schedule(): void {
    const { minReconnectDelay, maxReconnectDelay, random } = this.opts;
    // A followed redirect is not a failure: go at once and leave the backoff as it is.
    const delay =
      this.target !== undefined ? 0 : backoffDelay(this.attempt++, minReconnectDelay, maxReconnectDelay, random);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.retry();
    }, delay);
  }
}
