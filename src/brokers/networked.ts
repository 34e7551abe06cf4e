/**
 * What the networked brokers (Redis, NATS, RabbitMQ) do alike: the
 * lifecycle (`new`, `starting`, `started`, `closed`), readiness (a bounded
 * wait while starting, each change reported once when started), the faults
 * they survive, an idempotent close, and calls of the node's handlers that
 * never throw into a connection's event loop. A broker built on it
 * implements only `open` and `release` (its connections), its own publish
 * and subscribe, and its store methods.
 */
import type { BrokerHandlers } from './broker.js';
import { BrokerError, closedError } from './errors.js';
import { Faults } from './faults.js';
import { HandlerCalls } from './handler-calls.js';
import { Readiness } from './readiness.js';

export type BrokerState = 'new' | 'starting' | 'started' | 'closed';

export abstract class NetworkedBroker {
  protected state: BrokerState = 'new';
  /** Set by the first `close`. */
  protected closing: Promise<void> | undefined;
  /** The node's handlers, called safely. */
  protected readonly calls: HandlerCalls;
  private readonly faults: Faults;
  private readonly readiness = new Readiness();

  constructor(onError?: (err: Error, where: string) => void) {
    this.faults = new Faults(onError);
    this.calls = new HandlerCalls(this.faults);
  }

  /** Whether the broker can carry messages now. */
  abstract get ready(): boolean;

  /** Faults survived so far (connection errors, undecodable messages, handler exceptions). */
  get errors(): number {
    return this.faults.count;
  }

  async start(nodeId: string, handlers: BrokerHandlers): Promise<void> {
    if (this.state !== 'new') throw new Error(`broker already ${this.state === 'closed' ? 'closed' : 'started'}`);
    this.state = 'starting';
    this.calls.handlers = handlers;
    await this.open(nodeId);
    this.state = 'started';
    this.readiness.arm(true);
  }

  /** Idempotent; pending calls are rejected and nothing is delivered afterwards. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /**
   * Connect and place what the broker always needs; resolve once it can
   * carry messages. On failure, close the broker and reject with a message
   * naming the backend.
   */
  protected abstract open(nodeId: string): Promise<void>;

  /** Close the connections (called once, by `close`, after the state is `closed`). */
  protected abstract release(): Promise<void>;

  /** The last fault survived, for start-up messages. */
  protected get lastFault(): Error | undefined {
    return this.faults.last;
  }

  protected fault(err: unknown, where: string): void {
    this.faults.report(err, where);
  }

  /** Resolves once `ok()` holds, re-checked on every `changed`; rejects at `deadline` or on `close`. */
  protected waitUntil(ok: () => boolean, deadline: number): Promise<void> {
    return this.readiness.waitUntil(ok, () => this.state === 'closed', deadline, (why) =>
      why === 'timed out' ? new BrokerError('timeout', why) : closedError(),
    );
  }

  /** A connection changed state: wake a pending `waitUntil`, and once started report a change of `ready`. */
  protected changed(): void {
    this.readiness.changed(this.state === 'started', this.ready, (ready) => this.calls.readyChange(ready));
  }

  private async shutdown(): Promise<void> {
    this.state = 'closed';
    this.calls.handlers = undefined;
    this.readiness.wake();
    await this.release();
  }
}
