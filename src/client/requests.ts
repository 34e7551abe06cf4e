/**
 * Request bookkeeping: ids, replies, timeouts, and the bounded queue of
 * requests made while the client is (re)connecting. One place owns this so
 * no method repeats the timeout logic.
 */
import type { ClientFrame, ErrorBody } from '../protocol/index.js';
import { ClientError, LocalErrorCode } from './errors.js';

/** Frames that carry an `id` and get exactly one reply. */
export type RequestFrame = Extract<ClientFrame, { id: number }>;

/** Distributes `Omit` over the union, so each frame keeps its own fields. */
export type RequestBody = RequestFrame extends infer F ? (F extends RequestFrame ? Omit<F, 'id'> : never) : never;

interface Entry {
  frame: RequestFrame;
  resolve(result: unknown): void;
  reject(err: ClientError): void;
  timer: ReturnType<typeof setTimeout>;
  /** Written to a socket; a dropped connection can no longer answer it. */
  sent: boolean;
}

export interface RequestLimits {
  /** Milliseconds a request waits for its reply, queued time included. */
  timeout: number;
  /** Requests that may wait for a connection at once. */
  maxQueued: number;
}

export class Requests {
  private nextId = 1;
  private readonly pending = new Map<number, Entry>();
  /** Ids not yet sent, in the order they were made. */
  private queue: number[] = [];

  constructor(private readonly limits: RequestLimits) {}

  /** Number of requests awaiting a reply or a connection. */
  get size(): number {
    return this.pending.size;
  }

  /**
   * Start a request. `send` writes the frame and returns false when there is
   * no open connection; the request then waits in the queue for `flush`, or,
   * when not `queueable`, is rejected with `disconnected` at once.
   */
  start<R>(body: RequestBody, send: ((frame: RequestFrame) => boolean) | undefined, queueable = true): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const id = this.nextId++;
      const frame = { ...body, id } as RequestFrame;
      const sent = send ? send(frame) : false;
      if (!sent && !queueable) {
        reject(new ClientError(LocalErrorCode.Disconnected, `not connected: "${frame.type}" not sent`));
        return;
      }
      if (!sent && this.queue.length >= this.limits.maxQueued) {
        reject(new ClientError(LocalErrorCode.QueueFull, `more than ${this.limits.maxQueued} requests wait for a connection`));
        return;
      }
      const timer = setTimeout(() => {
        this.drop(id);
        reject(new ClientError(LocalErrorCode.Timeout, `no reply to "${frame.type}" within ${this.limits.timeout} ms`));
      }, this.limits.timeout);
      this.pending.set(id, { frame, resolve: resolve as (r: unknown) => void, reject, timer, sent });
      if (!sent) this.queue.push(id);
    });
  }

  /** Send every queued request, in order, until `send` refuses. */
  flush(send: (frame: RequestFrame) => boolean): void {
    while (this.queue.length > 0) {
      const id = this.queue[0] as number;
      const entry = this.pending.get(id);
      if (entry) {
        if (!send(entry.frame)) return;
        entry.sent = true;
      }
      this.queue.shift();
    }
  }

  /** Settle the request `id` from its reply; returns false for an unknown id (late or foreign reply). */
  settle(id: number, reply: { result?: unknown; error?: ErrorBody }): boolean {
    const entry = this.pending.get(id);
    if (!entry) return false;
    this.drop(id);
    if (reply.error) entry.reject(new ClientError(reply.error.code, reply.error.message));
    else entry.resolve(reply.result);
    return true;
  }

  /**
   * The connection dropped: reject every request that was sent on it (its
   * reply can no longer come, and re-sending a publish could duplicate it).
   * With `queuedToo`, reject the ones still waiting for a connection as well.
   */
  rejectAll(message: string, queuedToo: boolean): void {
    for (const [id, entry] of [...this.pending]) {
      if (!entry.sent && !queuedToo) continue;
      this.drop(id);
      entry.reject(new ClientError(LocalErrorCode.Disconnected, message));
    }
  }

  private drop(id: number): void {
    const entry = this.pending.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.pending.delete(id);
    if (!entry.sent) this.queue = this.queue.filter((q) => q !== id);
  }
}
