/**
 * The node's handlers as a broker calls them. An exception a handler throws
 * is the node's fault, not the connection's: it is reported at `where` and
 * goes no further, so it never breaks a connection's event loop nor the
 * rest of a batch. Nothing is called before `start` nor after `close`.
 */
import type { BrokerHandlers, BrokerPublication } from './broker.js';
import type { Faults } from './faults.js';

export class HandlerCalls {
  /** The node's handlers, from `start` until `close`. */
  handlers: BrokerHandlers | undefined;

  constructor(private readonly faults: Faults) {}

  /** Whether there are handlers to call (started, not closed). */
  get attached(): boolean {
    return this.handlers !== undefined;
  }

  publication(pub: BrokerPublication, where = 'message handler'): void {
    this.call(where, (h) => h.onPublication(pub));
  }

  control(payload: string, where = 'control handler'): void {
    this.call(where, (h) => h.onControl(payload));
  }

  readyChange(ready: boolean, where = 'onReadyChange handler'): void {
    this.call(where, (h) => h.onReadyChange(ready));
  }

  private call(where: string, run: (handlers: BrokerHandlers) => void): void {
    const handlers = this.handlers;
    if (!handlers) return;
    try {
      run(handlers);
    } catch (err) {
      this.faults.report(err, where);
    }
  }
}
