/**
 * Work gathered over one turn of the event loop and done at its check phase
 * (`setImmediate`, after the I/O callbacks of the poll phase), so that what
 * many connections ask in the same moment goes to the broker as one call
 * carrying many items (Node only). ioredis pipelines the same way: the
 * commands issued within a turn go out in one write.
 */

/**
 * Items added within a turn, handed to `run` together at its check phase;
 * each `add` settles as that call does.
 */
export class TurnBatch<T> {
  private items: T[] = [];
  private waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];

  constructor(private readonly run: (items: T[]) => Promise<void>) {}

  add(item: T): Promise<void> {
    if (this.items.length === 0) setImmediate(() => this.flush());
    this.items.push(item);
    return new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private flush(): void {
    const { items, waiters } = this;
    this.items = [];
    this.waiters = [];
    let call: Promise<void>;
    try {
      call = this.run(items);
    } catch (err) {
      call = Promise.reject(err);
    }
    call.then(
      () => {
        for (const w of waiters) w.resolve();
      },
      (err: unknown) => {
        for (const w of waiters) w.reject(err);
      },
    );
  }
}
