/**
 * Work gathered over one turn of the event loop and done at its check phase
 * (`setImmediate`, after the I/O callbacks of the poll phase), so that what
 * many connections ask in the same moment goes to the broker as one call
 * carrying many items (Node only). ioredis pipelines the same way: the
 * commands issued within a turn go out in one write.
 */

/**
 * Items added within a turn, handed to `run` together at its check phase;
 * each `add` settles as that call does, with its own result when `run`
 * answers one per item (in the order given).
 */
export class TurnBatch<T, R = void> {
  private items: T[] = [];
  private waiters: Array<{ resolve: (result: R) => void; reject: (err: unknown) => void }> = [];
  private readonly flushNow = (): void => this.flush();

  constructor(private readonly run: (items: T[]) => Promise<readonly R[] | void>) {}

  add(item: T): Promise<R> {
    if (this.items.length === 0) setImmediate(this.flushNow);
    this.items.push(item);
    return new Promise<R>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private flush(): void {
    const { items, waiters } = this;
    this.items = [];
    this.waiters = [];
    let call: Promise<readonly R[] | void>;
    try {
      call = this.run(items);
    } catch (err) {
      call = Promise.reject(err);
    }
    call.then(
      (results) => {
        waiters.forEach((w, i) => w.resolve(results?.[i] as R));
      },
      (err: unknown) => {
        for (const w of waiters) w.reject(err);
      },
    );
  }
}
