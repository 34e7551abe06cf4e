/**
 * Batches the messages one side sends: everything queued during one turn of
 * the event loop goes as one envelope, so a burst of publications costs one
 * serialization and one write to the channel rather than one each.
 */
import type { IpcPort } from './port.js';
import type { WireMessage } from './wire.js';

/** A batch this long is sent at once instead of waiting for the end of the turn. */
export const MAX_BATCH = 512;

export class Outbox {
  private queue: WireMessage[] = [];
  private scheduled: ReturnType<typeof setImmediate> | undefined;

  constructor(private readonly port: IpcPort) {}

  push(message: WireMessage): void {
    this.queue.push(message);
    if (this.queue.length >= MAX_BATCH) this.flush();
    else this.scheduled ??= setImmediate(() => this.flush());
  }

  /** Send what is queued now. */
  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.port.send({ sbipc: batch });
  }

  /** Drop what is queued (the channel is gone). */
  clear(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.queue = [];
  }
}
