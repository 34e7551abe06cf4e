/**
 * Publishes that pile up go out together: while `maxInFlight` requests are
 * under way, further `publish` and `send` calls wait in a queue, and when a
 * request finishes the queue leaves as one `POST /api/batch` (up to 1000
 * commands). A service that publishes one message at a time pays one request
 * per message only while the node keeps up; under load it pays one per batch.
 *
 * Order is kept per channel: at most one request carrying a channel is under
 * way at a time (requests on separate connections may overtake each other),
 * calls on a channel that has one wait, and the queue leaves in call order,
 * a batch keeping the order of its commands on a channel.
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
  /** The channel it publishes to (`user:<id>` for a send): one request per channel under way at a time. */
  channel: string;
  resolve: (s: Settled) => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class Batcher {
  private inFlight = 0;
  private queue: Waiting[] = [];
  /** Channels with a request under way. */
  private readonly busy = new Set<string>();

  constructor(
    /** Requests under way before calls start to wait and batch; 0 switches batching off (and ordering with it). */
    private readonly maxInFlight: number,
    /** Sends one command as its own request (`/api/publish` or `/api/send`). */
    private readonly one: (command: KeyedCommand, signal: AbortSignal | undefined) => Promise<Settled>,
    /** Sends commands as one `/api/batch` (no signal: a batch is shared, one caller cannot abort it). */
    private readonly many: (commands: KeyedCommand[]) => Promise<BatchResult[]>,
  ) {}

  /** Publish `command`: at once when a request may start for its channel, else with the next batch. */
  run(command: KeyedCommand, signal: AbortSignal | undefined): Promise<Settled> {
    if (this.maxInFlight === 0) return this.one(command, signal);
    signal?.throwIfAborted();
    const channel = 'publish' in command ? command.publish.channel : `user:${command.send.user}`;
    const settled = new Promise<Settled>((resolve, reject) => {
      const waiting: Waiting = { command, channel, resolve, reject, signal, onAbort: undefined };
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
    this.pump();
    return settled;
  }

  /**
   * Start requests while there is room: each takes, in call order, the
   * waiting calls whose channel has no request under way (up to 1000; a
   * channel passed over keeps its later calls waiting too, so its order
   * holds). One call goes as its own request, several as a batch.
   */
  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const part: Waiting[] = [];
      const left: Waiting[] = [];
      for (const w of this.queue) {
        if (this.busy.has(w.channel) || part.length >= MAX_BATCH_COMMANDS) left.push(w);
        else part.push(w);
      }
      if (part.length === 0) return;
      this.queue = left;
      const channels = new Set(part.map((w) => w.channel));
      for (const c of channels) this.busy.add(c);
      for (const w of part) if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
      this.inFlight++;
      const request =
        part.length === 1
          ? this.one(part[0]!.command, part[0]!.signal).then(part[0]!.resolve, part[0]!.reject)
          : this.many(part.map((w) => w.command)).then(
              (results) => part.forEach((w, i) => settle(w, results[i])),
              (err: unknown) => part.forEach((w) => w.reject(err)),
            );
      void request.finally(() => {
        this.inFlight--;
        for (const c of channels) this.busy.delete(c);
        this.pump();
      });
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
