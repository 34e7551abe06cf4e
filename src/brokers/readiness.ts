/**
 * Readiness as the networked brokers report it: `start` waits (bounded) for
 * their connections, re-checking on every connection event, and once
 * started a change of readiness reaches the node once, when it happens.
 */
export class Readiness {
  /** The readiness last reported. */
  private reported = false;
  /** Wakes the `waitUntil` under way, if any. */
  private waiter: (() => void) | undefined;

  /** Started: changes are reported from `ready` on. */
  arm(ready: boolean): void {
    this.reported = ready;
  }

  /**
   * A connection changed state: wake a pending `waitUntil`, and when `armed`
   * report `ready` if it differs from what was reported last.
   */
  changed(armed: boolean, ready: boolean, report: (ready: boolean) => void): void {
    this.waiter?.();
    if (!armed || ready === this.reported) return;
    this.reported = ready;
    report(ready);
  }

  /** Wake a pending `waitUntil` (e.g. to see that the broker closed). */
  wake(): void {
    this.waiter?.();
  }

  /**
   * Resolves once `ok()` holds, re-checked on every `changed`/`wake`;
   * rejects when `closed()` or at `deadline`, with the error `fail` makes.
   */
  waitUntil(ok: () => boolean, closed: () => boolean, deadline: number, fail: (why: 'timed out' | 'broker closed') => Error): Promise<void> {
    if (ok()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        this.waiter = undefined;
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => finish(fail('timed out')), Math.max(0, deadline - Date.now()));
      this.waiter = () => {
        if (closed()) finish(fail('broker closed'));
        else if (ok()) finish();
      };
    });
  }
}
