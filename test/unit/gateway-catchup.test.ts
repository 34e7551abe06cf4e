/**
 * Gaps and outages. After a broker outage the gateway reads what it missed from history. A
 * live publication that arrives before that read completes must wait: if it
 * were delivered first, the session would drop the older ones as already
 * seen. Driven with an in-process broker whose outage and slow history the
 * test controls.
 */
import { pino } from 'pino';
import { afterEach, expect, it, vi } from 'vitest';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import type { ServerFrame } from '../../src/protocol/index.js';
import { Gateway } from '../../src/server/core/gateway.js';
import type { Transport } from '../../src/server/core/session.js';
import { Metrics } from '../../src/server/metrics.js';
import { withDefaults } from '../../src/server/options.js';
import { InterestRouting } from '../../src/server/routing/strategies.js';
import { FlakyBroker } from '../helpers/flaky-broker.js';
import { sleep } from '../helpers/wait.js';

const frames: ServerFrame[] = [];
const transport: Transport = {
  send: (data) => void frames.push(JSON.parse(String(data)) as ServerFrame),
  close: () => undefined,
  bufferedAmount: 0,
};

let gateway: Gateway | undefined;
afterEach(async () => {
  await gateway?.close();
  frames.length = 0;
});

it('holds live publications until the catch-up after an outage has delivered the older ones, so none is lost', async () => {
  const bus = new MemoryBus();
  const broker = new FlakyBroker(bus);
  const other = new MemoryBroker(bus);
  await other.start('n2', { onPublication: () => undefined, onReadyChange: () => undefined, onControl: () => undefined });
  gateway = new Gateway('n1', withDefaults({ nodeId: 'n1', logLevel: 'silent' }), broker, new InterestRouting(), new Metrics({ node: 'n1' }), pino({ level: 'silent' }));
  await gateway.start();
  const session = gateway.open({ user: 'alice', grants: [], transport });
  await new Promise<void>((resolve) => session.enqueue(async () => resolve()));
  await gateway.subscribe(session, 'feed', undefined, (result) => session.send({ type: 'reply', id: 1, result }));

  const policy = { size: 100, ttlMs: 60_000 };
  const publish = (data: string) => other.publish({ channel: 'feed', data, ts: Date.now() }, policy);
  await publish('m1');
  broker.down();
  // Published while this node cannot hear them: only the history has them.
  await publish('m2');
  await publish('m3');
  broker.historyDelayMs = 100;
  broker.up();
  // Arrives live while the catch-up is still reading history.
  await publish('m4');
  await vi.waitUntil(() => frames.filter((f) => f.type === 'message').length >= 4, { timeout: 5_000, interval: 10 });
  // Pause, not a wait: no duplicate may follow.
  await sleep(100);

  const got = frames.filter((f): f is Extract<ServerFrame, { type: 'message' }> => f.type === 'message').map((f) => f.data);
  expect(got).toEqual(['m1', 'm2', 'm3', 'm4']);
  await other.close();
});

it('fills a gap in a channel from history when a publication was lost on the way, without an outage', async () => {
  const bus = new MemoryBus();
  const broker = new FlakyBroker(bus);
  const other = new MemoryBroker(bus);
  await other.start('n2', { onPublication: () => undefined, onReadyChange: () => undefined, onControl: () => undefined });
  const metrics = new Metrics({ node: 'n1' });
  gateway = new Gateway('n1', withDefaults({ nodeId: 'n1', logLevel: 'silent' }), broker, new InterestRouting(), metrics, pino({ level: 'silent' }));
  await gateway.start();
  const session = gateway.open({ user: 'bob', grants: [], transport });
  await new Promise<void>((resolve) => session.enqueue(async () => resolve()));
  await gateway.subscribe(session, 'feed', undefined, (result) => session.send({ type: 'reply', id: 1, result }));

  const policy = { size: 100, ttlMs: 60_000 };
  const publish = (data: string) => other.publish({ channel: 'feed', data, ts: Date.now() }, policy);
  await publish('m1');
  broker.dropNext = 1;
  await publish('m2');
  broker.historyDelayMs = 50;
  await publish('m3');
  await publish('m4');
  await vi.waitUntil(() => frames.filter((f) => f.type === 'message').length >= 4, { timeout: 5_000, interval: 10 });
  // Pause, not a wait: no duplicate may follow.
  await sleep(100);

  const got = frames.filter((f): f is Extract<ServerFrame, { type: 'message' }> => f.type === 'message').map((f) => f.data);
  expect(got).toEqual(['m1', 'm2', 'm3', 'm4']);
  expect((await metrics.registry.getSingleMetricAsString('switchboard_gaps_filled_total')).trim().split('\n').at(-1)).toMatch(/ 1$/);
  await other.close();
});
