/**
 * The `refresh` hook (SPEC "Backend hooks and events"): a session the
 * connect hook accepted with an `expireAt` is POSTed as `{user, session,
 * meta}` to `--refresh-hook` a little before then. 200 `{expireAt}` extends
 * it; 401 or 403 ends it at once with 4105; a failure (timeout, 5xx,
 * nonsense) is tried again until `expireAt`, when the heartbeat sweep closes
 * the session with 4105 as for any expired session: never let through.
 *
 * No timer per session: each session carries `refreshAt`, and the
 * heartbeat's node-wide sweep calls `due` for the sessions whose time has
 * come. Calls out at once are bounded (half of `--hook-max-in-flight`, so
 * that connects and rpc calls keep room); a session due while the bound is
 * reached waits for a later sweep.
 */
import type { Logger } from 'pino';
import { CloseCode, ErrorCode, SwitchboardError } from '../../protocol/index.js';
import type { Refresher } from '../core/heartbeat.js';
import type { Session } from '../core/session.js';
import type { HookClient } from './client.js';
import { checkExpireAt } from './connect.js';

/** Ask this long before `expireAt` at most… */
const MARGIN_MS = 10_000;
/** …and when at most this share of the life granted is left, so a short life is not spent asking. */
const MARGIN_SHARE = 0.5;
/** After a failed call, ask again this long later (the sweep's interval rounds it up). */
const RETRY_MS = 1000;

/**
 * When to ask the backend to extend a session granted, at `nowMs`, a life
 * until `expiresS` (Unix seconds): 10 s before its end, or halfway when it
 * lives less than 20 s.
 */
export function refreshTime(expiresS: number, nowMs: number): number {
  const endMs = expiresS * 1000;
  return endMs - Math.min(MARGIN_MS, Math.max(0, endMs - nowMs) * MARGIN_SHARE);
}

export class RefreshHook implements Refresher {
  private inFlight = 0;
  private readonly maxInFlight: number;

  constructor(
    private readonly client: HookClient,
    private readonly url: string,
    hookMaxInFlight: number,
    private readonly log: Logger,
  ) {
    this.maxInFlight = Math.max(1, Math.floor(hookMaxInFlight / 2));
  }

  /** Plan the first refresh of a session the connect hook accepted; nothing for one that does not expire. */
  schedule(session: Session, nowMs: number): void {
    if (session.expires !== undefined) session.refreshAt = refreshTime(session.expires, nowMs);
  }

  /** The sweep found `session` due (`refreshAt` passed): ask the backend, unless the bound of calls is reached. */
  due(session: Session, nowMs: number): void {
    if (this.inFlight >= this.maxInFlight) return;
    this.inFlight++;
    session.refreshAt = undefined;
    void this.refresh(session)
      .then(
        (expireAt) => {
          if (session.closed) return;
          session.expires = expireAt;
          this.schedule(session, Date.now());
        },
        (err: unknown) => this.failed(session, err, nowMs),
      )
      .finally(() => this.inFlight--);
  }

  private async refresh(session: Session): Promise<number> {
    const answer = await this.client.call('refresh', this.url, { user: session.user, session: session.id, meta: session.meta ?? null });
    return checkExpireAt('refresh', answer.expireAt, Date.now());
  }

  private failed(session: Session, err: unknown, startedMs: number): void {
    if (session.closed) return;
    if (err instanceof SwitchboardError && (err.code === ErrorCode.Forbidden || err.code === ErrorCode.Unauthorized)) {
      session.disconnect(CloseCode.TokenExpired, 'session expired: the backend did not extend it', true);
      return;
    }
    this.log.debug({ err, session: session.id, user: session.user }, 'refresh hook failed: trying again until the session expires');
    session.refreshAt = Math.max(startedMs, Date.now()) + RETRY_MS;
  }
}
