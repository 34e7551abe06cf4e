/**
 * Work gathered while the broker is busy and sent as one call carrying many
 * items, so that what many connections ask in the same moment costs one
 * broker call instead of many (Node only).
 */

/**
 * Items handed to `run` together; each `add` settles as that call does,
 * with its own result when `run` answers one per item (in the order given).
 *
 * When no call of this batch is under way, the items added go at the end
 * of the current microtasks: a lone item waits for nothing, and the items
 * one piece of code adds together (a frame, an HTTP batch) still share a
 * call. While a call is under way, items gather until the check phase of
 * the event loop (`setImmediate`, after the I/O callbacks of the poll
 * phase), so that what arrives on many connections in that turn goes out
 * together. Calls go out in the order their items were added: a new call
 * is scheduled only when none is waiting to go.
 */
export class TurnBatch<T, R = void> {
  private items: T[] = [];
  private waiters: Array<{ resolve: (result: R) => void; reject: (err: unknown) => void }> = [];
  /** Calls sent and not yet answered. */
  private underWay = 0;
  private readonly flushNow = (): void => this.flush();

  constructor(private readonly run: (items: T[]) => Promise<readonly R[] | void>) {}

  add(item: T): Promise<R> {
    if (this.items.length === 0) {
      if (this.underWay === 0) queueMicrotask(this.flushNow);
      else setImmediate(this.flushNow);
    }
    this.items.push(item);
    return new Promise<R>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private flush(): void {
    const { items, waiters } = this;
    this.items = [];
    this.waiters = [];
    this.underWay++;
    let call: Promise<readonly R[] | void>;
    try {
      call = this.run(items);
    } catch (err) {
      call = Promise.reject(err);
    }
    call.then(
      (results) => {
        this.underWay--;
        waiters.forEach((w, i) => w.resolve(results?.[i] as R));
      },
      (err: unknown) => {
        this.underWay--;
        for (const w of waiters) w.reject(err);
      },
    );
  }
}
