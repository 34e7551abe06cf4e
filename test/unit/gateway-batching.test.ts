/**
 * Sessions that close in the same moment share their broker calls: the
 * presence removals of every session closed in one turn of the event loop
 * go in one call. (Sessions that connect together share the write of their
 * calls instead: see test/integration/connect-round-trips.test.ts.)
 */
import { pino } from 'pino';
import { afterEach, expect, it, vi } from 'vitest';
import type { PresenceItem } from '../../src/brokers/broker.js';
import { MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { personalChannel } from '../../src/protocol/index.js';
import { Gateway } from '../../src/server/core/gateway.js';
import type { Transport } from '../../src/server/core/session.js';
import { Metrics } from '../../src/server/metrics.js';
import { withDefaults } from '../../src/server/options.js';
import { InterestRouting } from '../../src/server/routing/strategies.js';
import { counted } from '../helpers/counted-broker.js';

const transport: Transport = { send: () => undefined, close: () => undefined, bufferedAmount: 0 };

let gateway: Gateway | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});

it('puts the presence removals of sessions closed in one turn in one broker call', async () => {
  const bus = new MemoryBus();
  const { broker, calls, args } = counted(bus);
  gateway = new Gateway('n1', withDefaults({ nodeId: 'n1', logLevel: 'silent' }), broker, new InterestRouting(), new Metrics({ node: 'n1' }), pino({ level: 'silent' }));
  await gateway.start();
  const g = gateway;
  // One turn: as many upgrades as arrive in one poll phase.
  const sessions = Array.from({ length: 50 }, (_, i) => g.open({ user: `u${i}`, grants: [], transport }));
  await Promise.all(sessions.map((s) => s.settled));
  expect(await broker.store.presence(personalChannel('u7'))).toEqual([{ user: 'u7', session: sessions[7]!.id, node: 'n1' }]);

  for (const s of sessions) s.gone();
  await vi.waitFor(() => expect(calls.get('presenceRemove')).toBeGreaterThan(0), { timeout: 5_000, interval: 5 });
  expect(calls.get('presenceRemove')).toBe(1);
  expect((args.get('presenceRemove')![0] as PresenceItem[]).length).toBe(50);
  expect(await broker.store.presence(personalChannel('u7'))).toEqual([]);
});
