/**
 * The primary's side of `--workers N` with the memory broker: one
 * `MemoryBus` for the whole machine and, for each worker's channel, a
 * `MemoryBroker` on it that runs the calls the worker's `IpcBroker` sends.
 * Several `MemoryBroker`s on one bus already behave as a cluster (one
 * numbering per channel, one registry, control messages between node ids),
 * so the workers do too.
 *
 * The hub answers each call after the bus has done its work, and the
 * events a call causes for a worker are queued before that worker's later
 * answers: each worker sees what an in-process broker would show it.
 */
import type { BrokerHandlers, BrokerPublication, Idempotency, Registry, Route, Store } from '../broker.js';
import type { HistoryPolicy } from '../history.js';
import { Faults } from '../faults.js';
import { MemoryBroker, MemoryBus } from '../memory/memory-broker.js';
import { Outbox } from './outbox.js';
import type { IpcPort } from './port.js';
import { asCall, isRegistryMethod, isStoreMethod, openEnvelope, type CallMessage, type StoreMethod } from './wire.js';

export interface IpcHubOptions {
  /** Told of every fault the hub survives (undecodable messages from a worker). */
  onError?: (err: Error, where: string) => void;
}

export class IpcHub {
  private readonly links = new Set<HubLink>();
  private readonly faults: Faults;

  constructor(
    /** The bus every worker's broker is attached to. */
    readonly bus: MemoryBus = new MemoryBus(),
    options: IpcHubOptions = {},
  ) {
    this.faults = new Faults(options.onError);
  }

  /** Serve the worker at the other end of `port` until it closes (or `detach` is called on the result). */
  attach(port: IpcPort): HubLink {
    const link = new HubLink(this.bus, port, this.faults, () => this.links.delete(link));
    this.links.add(link);
    return link;
  }

  /** Workers being served. */
  get size(): number {
    return this.links.size;
  }

  /** Stop serving every worker (their brokers leave the bus). */
  async close(): Promise<void> {
    await Promise.all([...this.links].map((l) => l.detach()));
  }
}

/** One worker's channel and its broker on the bus. */
export class HubLink {
  private readonly broker: MemoryBroker;
  private readonly outbox: Outbox;
  private detached: Promise<void> | undefined;
  private readonly handlers: BrokerHandlers = {
    onPublication: (pub) => this.outbox.push({ t: 'p', p: pub }),
    onControl: (payload) => this.outbox.push({ t: 'c', c: payload }),
    // The bus is always ready.
    onReadyChange: () => undefined,
  };

  constructor(
    bus: MemoryBus,
    private readonly port: IpcPort,
    private readonly faults: Faults,
    private readonly onDetached: () => void,
  ) {
    this.broker = new MemoryBroker(bus);
    this.outbox = new Outbox(port);
    port.onMessage((value) => this.receive(value));
    port.onClose(() => void this.detach());
  }

  /** Take the worker's node off the bus (it exited or its channel closed). Idempotent. */
  detach(): Promise<void> {
    this.detached ??= (async () => {
      this.port.detach();
      this.outbox.clear();
      await this.broker.close();
      this.onDetached();
    })();
    return this.detached;
  }

  private receive(value: unknown): void {
    const batch = openEnvelope(value);
    if (!batch) return;
    for (const raw of batch) {
      const call = asCall(raw);
      if (call) void this.run(call);
      else this.faults.report(new Error('undecodable message from a worker'), 'ipc hub receive');
    }
  }

  private async run(call: CallMessage): Promise<void> {
    try {
      const result = await this.invoke(call);
      if (this.detached) return;
      this.outbox.push(result === undefined ? { t: 'r', i: call.i } : { t: 'r', i: call.i, r: result });
    } catch (err) {
      if (this.detached) return;
      this.outbox.push({ t: 'x', i: call.i, e: err instanceof Error ? err.message : String(err) });
    }
  }

  /**
   * Run one call on the worker's broker. The arguments are what the
   * worker's `IpcBroker` put in (this primary's own child, same build), so
   * they are taken as typed; `null` stands for an omitted optional argument
   * (JSON has no `undefined` in arrays).
   */
  private invoke({ o, a }: CallMessage): Promise<unknown> {
    const b = this.broker;
    switch (o) {
      case 'start':
        return b.start(a[0] as string, this.handlers);
      case 'close':
        return b.close();
      case 'subscribe':
        return b.subscribe(a[0] as string);
      case 'unsubscribe':
        return b.unsubscribe(a[0] as string);
      case 'publish':
        return b.publish(
          a[0] as Omit<BrokerPublication, 'offset' | 'epoch'>,
          a[1] as HistoryPolicy | null,
          (a[2] ?? undefined) as Route | undefined,
          (a[3] ?? undefined) as Idempotency | undefined,
        );
      case 'store':
        return this.store(a);
      case 'sendControl':
        return b.sendControl(a[0] as string | null, a[1] as string);
      default:
        return Promise.reject(new Error(`unknown call ${JSON.stringify(o satisfies never)}`));
    }
  }

  /** Run a store or registry call (`StoreCall`: the method's name and its arguments) on the worker's broker. */
  private store([method, args]: unknown[]): Promise<unknown> {
    if (!isStoreMethod(method) || !Array.isArray(args)) return Promise.reject(new Error(`unknown store call ${JSON.stringify(method)}`));
    const target: Store | Registry = isRegistryMethod(method) ? this.broker.registry : this.broker.store;
    const fn = (target as unknown as Record<StoreMethod, (...a: unknown[]) => Promise<unknown>>)[method];
    return fn.apply(target, args);
  }
}
