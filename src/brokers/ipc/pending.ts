/**
 * Calls waiting for the hub's answer, each with a deadline. One sweep timer
 * serves them all (a timer per call would cost more than the call at
 * publication rates): calls are kept in the order made, all with the same
 * timeout, so the sweep stops at the first one still in time.
 */

interface Waiting {
  op: string;
  deadline: number;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export class PendingCalls {
  private readonly calls = new Map<number, Waiting>();
  private nextId = 1;
  private sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly timeoutMs: number,
    private readonly max: number,
    /** Told when a sweep found calls past their deadline (the hub is not answering). */
    private readonly onTimeout: () => void,
  ) {}

  get size(): number {
    return this.calls.size;
  }

  /** A new call id and the promise of its answer; throws when `max` calls already wait. */
  open(op: string): { id: number; answer: Promise<unknown> } {
    if (this.calls.size >= this.max) throw new Error(`${this.max} calls to the primary are already waiting for an answer`);
    const id = this.nextId++;
    const answer = new Promise<unknown>((resolve, reject) => {
      this.calls.set(id, { op, deadline: Date.now() + this.timeoutMs, resolve, reject });
    });
    this.sweeper ??= this.startSweeper();
    return { id, answer };
  }

  resolve(id: number, value: unknown): void {
    const call = this.calls.get(id);
    if (!call) return; // timed out already: a late answer is dropped
    this.calls.delete(id);
    call.resolve(value);
  }

  reject(id: number, err: Error): void {
    const call = this.calls.get(id);
    if (!call) return;
    this.calls.delete(id);
    call.reject(err);
  }

  /** Reject every waiting call (the channel closed) and stop sweeping. */
  failAll(why: string): void {
    const calls = [...this.calls.values()];
    this.calls.clear();
    this.stop();
    for (const c of calls) c.reject(new Error(`${c.op}: ${why}`));
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private startSweeper(): ReturnType<typeof setInterval> {
    const timer = setInterval(() => this.sweep(Date.now()), Math.max(10, Math.min(1000, this.timeoutMs / 4)));
    timer.unref();
    return timer;
  }

  private sweep(now: number): void {
    let expired = 0;
    for (const [id, call] of this.calls) {
      if (call.deadline > now) break;
      this.calls.delete(id);
      expired++;
      call.reject(new Error(`${call.op}: no answer from the primary within ${this.timeoutMs} ms`));
    }
    if (this.calls.size === 0) this.stop();
    if (expired > 0) this.onTimeout();
  }
}
