/**
 * The broker of a worker process under `switchboard start --workers N`
 * with the memory broker: every call goes over the IPC channel to the
 * primary's `IpcHub`, which runs it on that worker's `MemoryBroker` on the
 * one `MemoryBus` all workers share; publications, control messages and
 * readiness come back as events on the same channel. Store and registry
 * calls all travel as one generic `store` call (see `wire.ts`).
 *
 * The channel keeps order, and the bus does a publish's deliveries before
 * it answers, so a worker sees events and answers in the order the bus
 * produced them, as an in-process `MemoryBroker` would.
 *
 * Readiness: false once the channel is gone (the primary exited: it never
 * comes back) or while calls go unanswered past their timeout (the primary
 * hangs); true again with the next answer. The bus itself, in the
 * primary's memory, is always ready.
 */
import type {
  Broker, BrokerHandlers, BrokerPublication, Idempotency,
  PublishReceipt, Registry, Route, Store,
} from '../broker.js';
import type { HistoryPolicy } from '../history.js';
import { ALL_ROUTES, REGISTRY_METHODS, STORE_METHODS } from '../broker.js';
import { Faults } from '../faults.js';
import { HandlerCalls } from '../handler-calls.js';
import { Outbox } from './outbox.js';
import { PendingCalls } from './pending.js';
import type { IpcPort } from './port.js';
import { asToWorker, openEnvelope, type Op, type StoreCall, type StoreMethod, type ToWorker } from './wire.js';

export interface IpcBrokerOptions {
  /** Milliseconds a call waits for the primary's answer before it rejects. Default 5000. */
  callTimeoutMs?: number;
  /** Calls waiting for an answer at once; past it, calls reject at once. Default 10000. */
  maxPending?: number;
  /** Told of every fault the broker survives (undecodable messages, handler exceptions). */
  onError?: (err: Error, where: string) => void;
}

export const DEFAULT_CALL_TIMEOUT_MS = 5_000;
export const DEFAULT_MAX_PENDING = 10_000;

export class IpcBroker implements Broker {
  readonly kind = 'ipc';
  readonly routes = ALL_ROUTES;
  /** The primary's store: each call is one `store` call over the channel. */
  readonly store: Store = this.remote<Store>(STORE_METHODS);
  /** The primary's registry, as `store`. */
  readonly registry: Registry = this.remote<Registry>(REGISTRY_METHODS);
  private started = false;
  private closing: Promise<void> | undefined;
  /** The channel to the primary is open. */
  private connected = true;
  /** Calls timed out since the last answer: the primary is not answering. */
  private stalled = false;
  /** The readiness the node was last told of. */
  private reported = true;
  private readonly pending: PendingCalls;
  private readonly outbox: Outbox;
  private readonly faults: Faults;
  /** The node's handlers: an exception is the node's fault, not the channel's, counted, and the batch goes on. */
  private readonly calls: HandlerCalls;

  constructor(
    private readonly port: IpcPort,
    options: IpcBrokerOptions = {},
  ) {
    this.faults = new Faults(options.onError);
    this.calls = new HandlerCalls(this.faults);
    this.outbox = new Outbox(port);
    this.pending = new PendingCalls(options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS, options.maxPending ?? DEFAULT_MAX_PENDING, () => {
      this.stalled = true;
      this.report();
    });
    port.onMessage((value) => this.receive(value));
    port.onClose(() => this.disconnected());
  }

  get ready(): boolean {
    return this.connected && !this.stalled;
  }

  async start(nodeId: string, handlers: BrokerHandlers): Promise<void> {
    if (this.started) throw new Error('broker already started');
    this.started = true;
    this.calls.handlers = handlers;
    this.reported = this.ready;
    try {
      await this.call('start', [nodeId]);
    } catch (err) {
      this.started = false;
      this.calls.handlers = undefined;
      throw err;
    }
  }

  /** Idempotent. Once it resolves, no handler is called again. */
  close(): Promise<void> {
    if (!this.started) return this.closing ?? Promise.resolve();
    this.closing ??= this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    try {
      if (this.connected) await this.call('close', []);
    } catch {
      // The primary is gone or hangs: its side is closed (or will be) with the channel.
    } finally {
      this.calls.handlers = undefined;
      this.started = false;
      this.closing = undefined;
      this.outbox.flush();
    }
  }

  async subscribe(channel: string): Promise<void> {
    await this.call('subscribe', [channel]);
  }

  async unsubscribe(channel: string): Promise<void> {
    await this.call('unsubscribe', [channel]);
  }

  async publish(
    pub: Omit<BrokerPublication, 'offset' | 'epoch'>,
    history: HistoryPolicy | null,
    route?: Route,
    once?: Idempotency,
  ): Promise<PublishReceipt> {
    const args: unknown[] = [pub, history];
    if (route !== undefined || once !== undefined) args.push(route ?? null);
    if (once !== undefined) args.push(once);
    return (await this.call('publish', args)) as PublishReceipt;
  }

  async sendControl(to: string | null, payload: string): Promise<void> {
    await this.call('sendControl', [to, payload]);
  }

  /** An object whose every method in `methods` is a `store` call of that method over the channel. */
  private remote<T>(methods: ReadonlyArray<StoreMethod & keyof T>): T {
    const call = (method: StoreMethod, args: unknown[]): Promise<unknown> => this.call('store', [method, args] as StoreCall, method);
    return Object.fromEntries(methods.map((m) => [m, async (...args: unknown[]) => call(m, args)])) as T;
  }

  /** Send a call and wait for its answer (`label` names it in errors); rejects at once when the channel is gone. */
  private call(op: Op, args: unknown[], label: string = op): Promise<unknown> {
    if (!this.connected) return Promise.reject(new Error(`${label}: the IPC channel to the primary is closed`));
    const { id, answer } = this.pending.open(label);
    this.outbox.push({ t: 'q', i: id, o: op, a: args });
    return answer;
  }

  private receive(value: unknown): void {
    const batch = openEnvelope(value);
    if (!batch) return; // not ours: other users of the channel
    for (const raw of batch) {
      const message = asToWorker(raw);
      if (message) this.handle(message);
      else this.faults.report(new Error('undecodable message from the primary'), 'ipc receive');
    }
  }

  private handle(message: ToWorker): void {
    switch (message.t) {
      case 'r':
        this.answered();
        this.pending.resolve(message.i, message.r);
        return;
      case 'x':
        this.answered();
        this.pending.reject(message.i, new Error(message.e));
        return;
      case 'p':
        this.calls.publication(message.p, 'onPublication');
        return;
      case 'c':
        this.calls.control(message.c, 'onControl');
        return;
      default:
        this.faults.report(new Error(`unknown message ${JSON.stringify(message satisfies never)}`), 'ipc receive');
    }
  }

  /** An answer came: the primary is answering again. */
  private answered(): void {
    if (!this.stalled) return;
    this.stalled = false;
    this.report();
  }

  private disconnected(): void {
    this.connected = false;
    this.outbox.clear();
    this.pending.failAll('the IPC channel to the primary closed');
    this.report();
  }

  /** Tell the node when the readiness it last heard of changed. */
  private report(): void {
    const now = this.ready;
    if (now === this.reported) return;
    this.reported = now;
    this.calls.readyChange(now, 'onReadyChange');
  }
}
