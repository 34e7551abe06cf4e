/**
 * The subscriptions one subscriber connection should hold, sent to Redis
 * in batches. Calls made in the same tick go out as one SUBSCRIBE and one
 * UNSUBSCRIBE (per `maxBatch` channels); each call's promise settles when
 * Redis has confirmed the batch that carries it. For one channel the last
 * call wins: subscribe-then-unsubscribe in one tick sends nothing.
 *
 * When the connection drops Redis forgets every subscription (`lost`); when
 * it is back, `restore` subscribes everything wanted again, and the set is
 * in sync once that is confirmed.
 */
import { BrokerError, closedError } from '../errors.js';

/** The connection a set is held on. */
export interface InterestLink {
  /** Whether commands can be sent now. */
  readonly connected: boolean;
  /** One (un)subscribe command for `channels`, resolved once Redis confirmed every one. */
  send(op: 'subscribe' | 'unsubscribe', channels: string[]): Promise<void>;
}

interface Waiter {
  /** Subscribes fail while the link is down; unsubscribes succeed (Redis holds nothing then). */
  subscribe: boolean;
  resolve(): void;
  reject(err: Error): void;
}

const noop = (): void => undefined;

export class InterestSet {
  private readonly wanted = new Set<string>();
  /** What Redis holds once every command sent so far has landed. */
  private readonly held = new Set<string>();
  /** Channels whose wanted state changed since the last flush. */
  private readonly dirty = new Set<string>();
  private waiters: Waiter[] = [];
  private timer: ReturnType<typeof setImmediate> | undefined;
  /** Settles when every command sent so far has been answered. */
  private last: Promise<void> = Promise.resolve();
  /** Bumped on every connection loss: answers to an older generation are stale. */
  private generation = 0;
  private synced = false;
  private closed = false;

  /**
   * @param maxBatch channels per command (default 1000)
   * @param onSendError a command failed while connected: `held` no longer matches Redis, the link should reconnect
   */
  constructor(
    private readonly link: InterestLink,
    private readonly onSendError: (err: Error) => void,
    private readonly maxBatch = 1000,
  ) {}

  /** Connected, and every wanted channel was confirmed after the last (re)connection. */
  get inSync(): boolean {
    return this.synced && this.link.connected;
  }

  get size(): number {
    return this.wanted.size;
  }

  channels(): string[] {
    return [...this.wanted];
  }

  has(channel: string): boolean {
    return this.wanted.has(channel);
  }

  add(channel: string): Promise<void> {
    return this.change(channel, true);
  }

  remove(channel: string): Promise<void> {
    return this.change(channel, false);
  }

  /** The connection dropped: Redis holds none of our subscriptions any more. */
  lost(): void {
    this.generation++;
    this.held.clear();
    this.synced = false;
    // Answers still due belong to the dead connection; their callers were already told.
    this.last = Promise.resolve();
  }

  /** The connection is (back) up: subscribe every wanted channel. True once all are confirmed on this connection. */
  async restore(): Promise<boolean> {
    const generation = this.generation;
    for (const c of this.wanted) this.dirty.add(c);
    this.flush();
    try {
      await this.last;
    } catch {
      return false;
    }
    if (generation !== this.generation || !this.link.connected || this.closed) return false;
    this.synced = true;
    return true;
  }

  /** Fail what is pending and send nothing more. */
  close(): void {
    this.closed = true;
    if (this.timer) clearImmediate(this.timer);
    this.timer = undefined;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(closedError());
  }

  private change(channel: string, subscribe: boolean): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    if (subscribe) this.wanted.add(channel);
    else this.wanted.delete(channel);
    this.dirty.add(channel);
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ subscribe, resolve, reject });
      this.timer ??= setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    if (this.timer) clearImmediate(this.timer);
    this.timer = undefined;
    const waiters = this.waiters;
    this.waiters = [];
    if (!this.link.connected || this.closed) {
      // Nothing is held while down; `restore` sends the whole wanted set.
      this.dirty.clear();
      for (const w of waiters) {
        if (w.subscribe) w.reject(new BrokerError('unavailable', 'redis is unreachable'));
        else w.resolve();
      }
      return;
    }

    const sub: string[] = [];
    const unsub: string[] = [];
    for (const c of this.dirty) {
      const want = this.wanted.has(c);
      if (want && !this.held.has(c)) {
        sub.push(c);
        this.held.add(c);
      } else if (!want && this.held.delete(c)) {
        unsub.push(c);
      }
    }
    this.dirty.clear();

    const sends: Array<Promise<void>> = [];
    for (let i = 0; i < sub.length; i += this.maxBatch) sends.push(this.link.send('subscribe', sub.slice(i, i + this.maxBatch)));
    for (let i = 0; i < unsub.length; i += this.maxBatch) sends.push(this.link.send('unsubscribe', unsub.slice(i, i + this.maxBatch)));

    if (sends.length > 0) {
      const generation = this.generation;
      // Replies come in command order, so this batch settling means every earlier one has too.
      this.last = Promise.all(sends).then(noop, (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        if (generation === this.generation && this.link.connected) this.onSendError(error);
        throw new BrokerError('unavailable', `redis did not confirm the subscription: ${error.message}`);
      });
      this.last.catch(noop);
    }
    for (const w of waiters) {
      this.last.then(w.resolve, (err: Error) => (w.subscribe ? w.reject(err) : w.resolve()));
    }
  }
}
