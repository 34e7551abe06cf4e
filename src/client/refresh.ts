/**
 * Token refresh on a live connection: when `welcome.expires` is set and the
 * app gave `getToken`, a fresh token is fetched and sent as a `refresh`
 * frame before the session expires, so the connection never has to close
 * for it (4105). A failed attempt is reported and retried a few times while
 * time remains; past the expiry the server closes with 4105 and the client
 * reconnects with a token from `getToken`.
 */
import type { RefreshResult } from '../protocol/index.js';

/** Attempts per expiry: the first plus retries. */
const MAX_ATTEMPTS = 4;
/** Refresh at least this long before the expiry (when the token lives long enough)… */
const MARGIN_MS = 30_000;
/** …and with at least this share of the remaining time left. */
const MARGIN_SHARE = 0.1;

/**
 * Milliseconds to wait before refresh attempt `attempt` (0 first) of a
 * session with `leftMs` to live. The first waits until 30 s or 10% of the
 * time are left, whichever comes first, but never past half the time left
 * (a short-lived token is not refreshed in a loop), minus up to 10% jitter
 * so that clients given tokens at once do not refresh at once. A retry waits
 * 1 s, 2 s, 4 s…, never past half of what is left.
 */
export function refreshDelay(leftMs: number, attempt: number, random: () => number): number {
  if (leftMs <= 0) return 0;
  if (attempt > 0) return Math.min(1000 * 2 ** (attempt - 1), leftMs / 2);
  const margin = Math.min(Math.max(MARGIN_MS, leftMs * MARGIN_SHARE), leftMs / 2);
  const delay = leftMs - margin;
  return Math.max(0, delay - delay * 0.1 * random());
}

/** Where tokens come from: the client's options. Without `getToken` nothing is refreshed. */
export interface TokenSource {
  getToken?: (() => Promise<string>) | undefined;
  random: () => number;
}

export interface RefreshDeps {
  /** Send `refresh` with `token` on the current connection; resolves to the reply's result. */
  send: (token: string) => Promise<RefreshResult>;
  /** A failed attempt (`getToken` or the server's refusal). */
  onError: (err: unknown) => void;
}

export class TokenRefresher {
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Moves on at every `start` and `stop`, so late results of an earlier session are ignored. */
  private generation = 0;

  constructor(
    private readonly source: TokenSource,
    private readonly deps: RefreshDeps,
  ) {}

  /** A session began that expires at `expires` (Unix seconds); nothing to do when undefined or without `getToken`. */
  start(expires: number | undefined): void {
    this.stop();
    if (expires !== undefined && this.source.getToken) this.plan(expires, this.generation, 0);
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.generation++;
  }

  private plan(expires: number, generation: number, attempt: number): void {
    const leftMs = expires * 1000 - Date.now();
    if (leftMs <= 0 || attempt >= MAX_ATTEMPTS) return; // the server closes with 4105; the reconnect gets a fresh token
    this.timer = setTimeout(() => void this.attempt(expires, generation, attempt), refreshDelay(leftMs, attempt, this.source.random));
  }

  private async attempt(expires: number, generation: number, attempt: number): Promise<void> {
    this.timer = undefined;
    const getToken = this.source.getToken;
    if (!getToken) return;
    try {
      const token = await getToken();
      if (generation !== this.generation) return;
      const result = await this.deps.send(token);
      if (generation !== this.generation) return;
      if (result.expires !== undefined) this.plan(result.expires, generation, 0);
    } catch (err) {
      if (generation !== this.generation) return;
      this.deps.onError(err);
      this.plan(expires, generation, attempt + 1);
    }
  }
}
