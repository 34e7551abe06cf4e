/**
 * The heartbeat: a `ping` to each session that has been quiet for the ping
 * interval (or its transport's own keep-alive, which nobody answers: an SSE
 * comment), a close for a session that did not answer its last ping within
 * the pong timeout (4103), and a close for a session whose token expired
 * without a `refresh` (4105). One node-wide sweep does all three: the
 * expiry check is one comparison per session on a pass that visits every
 * session anyway, where a timer per session would cost memory and timer
 * churn on each of 100k connections. An expired session is closed within
 * one sweep interval (at most a second) after its `expires`. The same pass
 * hands a `Refresher` (the refresh hook) the sessions whose `refreshAt` has
 * come, so extending sessions needs no timer of its own either.
 */
import { CloseCode } from '../../protocol/index.js';
import type { Session } from './session.js';

/** Extends sessions before they expire (the refresh hook). */
export interface Refresher {
  /** `session`'s `refreshAt` has come. */
  due(session: Session, now: number): void;
}

export class Heartbeat {
  /** Told of the sessions due for a refresh; none: nothing is refreshed here. */
  refresher: Refresher | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly sessions: Iterable<Session>,
    /** Seconds of quiet before a `ping` (`--ping`). */
    private readonly pingS: number,
    /** Seconds a `ping` may go unanswered (`--pong-timeout`). */
    private readonly pongTimeoutS: number,
  ) {}

  /** Check every session a few times per ping interval (between 0.1 and 1 s). */
  start(): void {
    const everyMs = Math.max(100, Math.min(1000, (this.pingS * 1000) / 4));
    this.timer = setInterval(() => this.beat(Date.now()), everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Close expired sessions; send `ping` to quiet ones; close the ones that did not answer the last one in time. */
  private beat(now: number): void {
    const quietMs = this.pingS * 1000;
    const timeoutMs = this.pongTimeoutS * 1000;
    for (const s of this.sessions) {
      if (s.expires !== undefined && now >= s.expires * 1000) {
        // A session of the connect hook (it has `meta`) reconnects through the hook again: no token to renew.
        s.disconnect(CloseCode.TokenExpired, s.meta === undefined ? 'token expired: reconnect with a fresh token' : 'session expired: reconnect', true);
        continue;
      }
      if (s.refreshAt !== undefined && now >= s.refreshAt) this.refresher?.due(s, now);
      if (s.pingSentAt !== undefined) {
        if (now - s.pingSentAt > timeoutMs) s.disconnect(CloseCode.HeartbeatTimeout, 'heartbeat timeout', true);
      } else if (now - s.lastSentAt >= quietMs) {
        // A transport's own keep-alive (SSE) is not answered: no pong is awaited after it.
        if (s.keepAlive()) s.lastSentAt = now;
        else {
          s.send({ type: 'ping' });
          s.pingSentAt = now;
        }
      }
    }
  }
}
