/** The broker conformance suite against the in-process broker: one `MemoryBus` per test is the shared backend. */
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { brokerSuite } from './suite.js';

brokerSuite('memory', async () => {
  const bus = new MemoryBus();
  return {
    make: () => new MemoryBroker(bus),
    cleanup: async () => {},
  };
});
