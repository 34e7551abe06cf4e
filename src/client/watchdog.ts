/**
 * Heartbeat watchdog: fires when nothing has been heard for `timeout` ms.
 * `touch()` runs for every incoming frame, so it only records a time; the
 * single timer re-arms itself for the remainder instead of being reset per
 * frame.
 */
export class Watchdog {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastHeard = 0;
  private timeout = 0;

  constructor(private readonly onExpire: () => void) {}

  /** Start (or restart) watching with a `timeout` in ms; 0 or less disables it. */
  start(timeout: number): void {
    this.stop();
    if (!(timeout > 0)) return;
    this.timeout = timeout;
    this.lastHeard = Date.now();
    this.arm(timeout);
  }

  /** Something was heard. */
  touch(): void {
    this.lastHeard = Date.now();
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => {
      const quiet = Date.now() - this.lastHeard;
      if (quiet >= this.timeout) {
        this.timer = undefined;
        this.onExpire();
      } else {
        this.arm(this.timeout - quiet);
      }
    }, ms);
  }
}
