/**
 * What a node keeps at the broker comes back when it was lost: after
 * another node declared this one dead and dropped its entries (`swept`),
 * and after a broker outage, during which a removal may have failed.
 */
import { pino } from 'pino';
import { afterEach, expect, it, vi } from 'vitest';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { personalChannel, type ServerFrame } from '../../src/protocol/index.js';
import { Gateway } from '../../src/server/core/gateway.js';
import type { Transport } from '../../src/server/core/session.js';
import { Metrics } from '../../src/server/metrics.js';
import { withDefaults } from '../../src/server/options.js';
import { RegistryRouting } from '../../src/server/routing/strategies.js';
import { FlakyBroker } from '../helpers/flaky-broker.js';

const frames: ServerFrame[] = [];
const transport: Transport = {
  send: (data) => void frames.push(JSON.parse(String(data)) as ServerFrame),
  close: () => undefined,
  bufferedAmount: 0,
};
const messages = (): unknown[] => frames.flatMap((f) => (f.type === 'message' ? [f.data] : []));

const started: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const s of started.splice(0).reverse()) await s.close();
  frames.length = 0;
});

async function setUp(): Promise<{ bus: MemoryBus; broker: FlakyBroker; other: MemoryBroker; gateway: Gateway }> {
  const bus = new MemoryBus();
  const broker = new FlakyBroker(bus);
  const other = new MemoryBroker(bus);
  await other.start('n2', { onPublication: () => undefined, onReadyChange: () => undefined, onControl: () => undefined });
  started.push(other);
  const gateway = new Gateway('n1', withDefaults({ nodeId: 'n1', logLevel: 'silent' }), broker, new RegistryRouting(), new Metrics({ node: 'n1' }), pino({ level: 'silent' }));
  await gateway.start();
  started.push(gateway);
  return { bus, broker, other, gateway };
}

const policy = { size: 100, ttlMs: 60_000 };
const TO_REGISTERED = { to: 'nodes', nodes: [], registered: true } as const;

it('swept: presence and registry entries go back, and what the registry did not route here meanwhile is caught up, in order', async () => {
  const { other, gateway } = await setUp();
  const session = gateway.open({ user: 'alice', grants: [], transport });
  await session.settled;
  await gateway.subscribe(session, 'feed', undefined, () => undefined);
  const publish = (data: string) => other.publish({ channel: 'feed', data, ts: Date.now() }, policy, TO_REGISTERED);
  await publish('m1');
  await vi.waitUntil(() => messages().length === 1, { timeout: 5_000, interval: 10 });

  // Another node declared n1 dead and dropped its entries: n1 is neither present nor routed to.
  await other.store.dropNode('n1');
  expect(await other.store.presence('feed')).toEqual([]);
  expect(await other.registry.registered('feed')).toEqual([]);
  await publish('m2');

  gateway.swept();
  await vi.waitUntil(async () => (await other.registry.registered('feed')).includes('n1'), { timeout: 5_000, interval: 10 });
  await vi.waitUntil(async () => (await other.store.presence('feed')).length === 1, { timeout: 5_000, interval: 10 });
  expect(await other.store.presence('feed')).toEqual([{ user: 'alice', session: session.id, node: 'n1' }]);
  expect((await other.store.presence(personalChannel('alice'))).map((e) => e.session)).toEqual([session.id]);
  await publish('m3');
  await vi.waitUntil(() => messages().length === 3, { timeout: 5_000, interval: 10 });
  expect(messages()).toEqual(['m1', 'm2', 'm3']);
});

it('a removal the broker did not take during an outage is made once it is back, and the live sessions are present again', async () => {
  const { broker, other, gateway } = await setUp();
  const staying = gateway.open({ user: 'alice', grants: [], transport });
  const leaving = gateway.open({ user: 'bob', grants: [], transport });
  await Promise.all([staying.settled, leaving.settled]);
  await gateway.subscribe(staying, 'feed', undefined, () => undefined);
  await gateway.subscribe(leaving, 'feed', undefined, () => undefined);
  expect(await other.store.presence('feed')).toHaveLength(2);

  broker.failRemovals = true;
  broker.down();
  await gateway.unsubscribe(leaving, 'feed');
  // The removal failed: the entry is still there (until the broker is back).
  await vi.waitFor(async () => expect(await other.store.presence('feed')).toHaveLength(2), { timeout: 5_000, interval: 10 });
  broker.failRemovals = false;
  broker.up();
  await vi.waitUntil(async () => (await other.store.presence('feed')).length === 1, { timeout: 5_000, interval: 10 });
  expect(await other.store.presence('feed')).toEqual([{ user: 'alice', session: staying.id, node: 'n1' }]);
});
