/**
 * Publishes that pile up go out together: while `maxInFlight` requests are
 * under way, further `publish` and `send` calls wait in a queue, and when a
 * request finishes the queue leaves as one `POST /api/batch` (up to 1000
 * commands). A service that publishes one message at a time pays one request
 * per message only while the node keeps up; under load it pays one per batch.
 * Order is kept per channel: the queue leaves in call order, and a batch
 * publishes its commands on one channel in that order.
 */
import {
  ErrorCode,
  httpStatusOf,
  MAX_BATCH_COMMANDS,
  type BatchResult,
  type PublishAnswer,
  type PublishRequest,
  type SendRequest,
} from '../protocol/index.js';
import { SwitchboardApiError } from './errors.js';

/** A batch command with its idempotency key set (the SDK's retries and batches need one). */
export type KeyedCommand = { publish: PublishRequest & { idempotencyKey: string } } | { send: SendRequest & { idempotencyKey: string } };

/** One call's outcome from a batch: the position and whether it was a repeat. */
export interface Settled {
  answer: PublishAnswer;
  replayed: boolean;
}

interface Waiting {
  command: KeyedCommand;
  resolve: (s: Settled) => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class Batcher {
  private inFlight = 0;
  private readonly queue: Waiting[] = [];

  constructor(
    /** Requests under way before calls start to wait and batch; 0 switches batching off. */
    private readonly maxInFlight: number,
    /** Sends one command as its own request (`/api/publish` or `/api/send`). */
    private readonly one: (command: KeyedCommand, signal: AbortSignal | undefined) => Promise<Settled>,
    /** Sends commands as one `/api/batch` (no signal: a batch is shared, one caller cannot abort it). */
    private readonly many: (commands: KeyedCommand[]) => Promise<BatchResult[]>,
  ) {}

  /** Publish `command`: at once while fewer than `maxInFlight` requests are under way, else in the next batch. */
  async run(command: KeyedCommand, signal: AbortSignal | undefined): Promise<Settled> {
    if (this.maxInFlight === 0) return this.one(command, signal);
    if (this.inFlight < this.maxInFlight && this.queue.length === 0) {
      this.inFlight++;
      try {
        return await this.one(command, signal);
      } finally {
        this.done();
      }
    }
    signal?.throwIfAborted();
    return new Promise<Settled>((resolve, reject) => {
      const waiting: Waiting = { command, resolve, reject, signal, onAbort: undefined };
      if (signal) {
        waiting.onAbort = () => {
          const i = this.queue.indexOf(waiting);
          if (i >= 0) this.queue.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', waiting.onAbort, { once: true });
      }
      this.queue.push(waiting);
    });
  }

  /** A request finished: send what waits, as many batches as there are free places. */
  private done(): void {
    this.inFlight--;
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const part = this.queue.splice(0, MAX_BATCH_COMMANDS);
      for (const w of part) if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
      this.inFlight++;
      this.many(part.map((w) => w.command))
        .then(
          (results) => part.forEach((w, i) => settle(w, results[i])),
          (err: unknown) => part.forEach((w) => w.reject(err)),
        )
        .finally(() => this.done());
    }
  }
}

/** Resolve or reject one waiting call with its result of the batch. */
function settle(w: Waiting, result: BatchResult | undefined): void {
  if (result === undefined) {
    w.reject(new SwitchboardApiError(ErrorCode.Internal, 'the batch answer has fewer results than commands', 200, 1));
  } else if ('error' in result) {
    w.reject(new SwitchboardApiError(result.error.code, result.error.message, httpStatusOf[result.error.code], 1));
  } else {
    const { replayed, ...answer } = result;
    w.resolve({ answer, replayed: replayed === true });
  }
}
