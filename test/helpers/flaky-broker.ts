/**
 * An in-process broker whose faults a test controls: it can be
 * "unreachable" (it drops what the bus delivers and says so), lose single
 * deliveries, answer history late, and refuse presence removals.
 */
import type { BrokerHandlers, BrokerPublication, Store } from '../../src/brokers/broker.js';
import { MemoryBroker, type MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { sleep } from './wait.js';

export class FlakyBroker extends MemoryBroker {
  private handlersOf: BrokerHandlers | undefined;
  private isDown = false;
  historyDelayMs = 0;
  /** Deliveries still to drop silently, as a broker hiccup would. */
  dropNext = 0;
  /** Presence removals reject while this is set (the broker did not take them). */
  failRemovals = false;

  override async start(nodeId: string, handlers: BrokerHandlers): Promise<void> {
    this.handlersOf = handlers;
    await super.start(nodeId, handlers);
  }

  override deliver(pub: BrokerPublication): void {
    if (this.dropNext > 0) {
      this.dropNext--;
      return;
    }
    if (!this.isDown) super.deliver(pub);
  }

  /** The bus's store, with history answering after `historyDelayMs` and removals failing while `failRemovals`. */
  override readonly store: Store;

  constructor(bus: MemoryBus) {
    super(bus);
    this.store = Object.assign(Object.create(bus.store) as Store, {
      history: async (...args: Parameters<Store['history']>) => {
        await sleep(this.historyDelayMs);
        return bus.store.history(...args);
      },
      presenceRemove: async (...args: Parameters<Store['presenceRemove']>) => {
        if (this.failRemovals) throw new Error('broker unreachable');
        return bus.store.presenceRemove(...args);
      },
    });
  }

  down(): void {
    this.isDown = true;
    this.handlersOf?.onReadyChange(false);
  }

  up(): void {
    this.isDown = false;
    this.handlersOf?.onReadyChange(true);
  }
}
