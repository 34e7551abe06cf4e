/**
 * The faults a broker survives (connection errors, undecodable messages,
 * handler exceptions): counted, the last one kept for start-up messages,
 * each handed to the node's reporter, which may itself not throw into a
 * connection's event loop.
 */
export class Faults {
  count = 0;
  last: Error | undefined;

  constructor(private readonly onError?: (err: Error, where: string) => void) {}

  report(err: unknown, where: string): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.count++;
    this.last = error;
    try {
      this.onError?.(error, where);
    } catch {
      // A failing error reporter must not break the broker.
    }
  }
}
