/**
 * The node's interest keeps a channel's only local subscriber as the
 * session itself and a set from the second on (a set of one per personal
 * channel would cost every connection some 150 bytes). Whatever the order of
 * joins and leaves, the subscribers read back are the ones that joined and
 * did not leave, and the broker subscription goes with the last of them.
 */
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { Interest } from '../../src/server/core/interest.js';
import { Session, type Transport } from '../../src/server/core/session.js';
import { withDefaults } from '../../src/server/options.js';
import { InterestRouting } from '../../src/server/routing/strategies.js';
import { counted } from '../helpers/counted-broker.js';

const transport: Transport = { send: () => undefined, close: () => undefined, bufferedAmount: 0 };
const limits = withDefaults({ nodeId: 'n1', logLevel: 'silent' }).limits;
const session = (id: string): Session => new Session({ id, user: id, grants: [], transport, limits, now: 0, onClosed: () => undefined });
const ids = (sessions: Iterable<Session> | undefined): string[] => [...(sessions ?? [])].map((s) => s.id).sort();

let interest: Interest | undefined;
afterEach(() => interest?.close());

function setup(): { interest: Interest; calls: Map<string, number> } {
  const { broker, calls } = counted(new MemoryBus());
  interest = new Interest(broker, new InterestRouting(), 1000, pino({ level: 'silent' }));
  return { interest, calls };
}

it('reads back the sessions that joined and did not leave, through one, two, three and back to none', async () => {
  const { interest, calls } = setup();
  const [a, b, c] = [session('a'), session('b'), session('c')];
  expect(interest.subscribers('ch')).toBeUndefined();
  interest.join(a, 'ch');
  interest.join(a, 'ch'); // twice: still one
  await interest.ensure('ch');
  expect(ids(interest.subscribers('ch'))).toEqual(['a']);
  interest.join(b, 'ch');
  interest.join(c, 'ch');
  interest.join(b, 'ch');
  expect(ids(interest.subscribers('ch'))).toEqual(['a', 'b', 'c']);
  expect(interest.leave(a, 'ch')).toBe(false);
  expect(interest.leave(a, 'ch')).toBe(false); // not a subscriber any more
  expect(ids(interest.subscribers('ch'))).toEqual(['b', 'c']);
  expect(interest.leave(c, 'ch')).toBe(false);
  expect(ids(interest.subscribers('ch'))).toEqual(['b']);
  expect(interest.leave(c, 'ch')).toBe(false);
  expect(interest.holds('ch')).toBe(true);
  // Back to one, then two again: the one left is still counted.
  interest.join(a, 'ch');
  expect(ids(interest.subscribers('ch'))).toEqual(['a', 'b']);
  expect(interest.leave(b, 'ch')).toBe(false);
  expect(calls.get('unsubscribe')).toBeUndefined();
  expect(interest.leave(a, 'ch')).toBe(true);
  expect(interest.holds('ch')).toBe(false);
  expect(interest.subscribers('ch')).toBeUndefined();
  expect(calls.get('unsubscribe')).toBe(1);
});

it('a session that is not the only subscriber leaves nothing behind, and one that never joined changes nothing', () => {
  const { interest } = setup();
  const [a, b] = [session('a'), session('b')];
  interest.join(a, 'one');
  expect(interest.leave(b, 'one')).toBe(false);
  expect(ids(interest.subscribers('one'))).toEqual(['a']);
  expect(interest.leave(b, 'none')).toBe(false);
  interest.join(a, 'two');
  interest.join(b, 'two');
  expect(Object.fromEntries([...interest.channels()].map(([channel, s]) => [channel, ids(s)]))).toEqual({ one: ['a'], two: ['a', 'b'] });
});
