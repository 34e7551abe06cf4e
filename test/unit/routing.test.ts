/**
 * The routing strategies on their own: the consistent-hash ring (balance,
 * stability, how many keys move when a node comes or goes) and the
 * hash-ring strategy's behaviour while membership settles.
 */
import { describe, expect, it } from 'vitest';
import { HashRing } from '../../src/server/routing/ring.js';
import {
  BroadcastRouting,
  createRouting,
  HashRingRouting,
  InterestRouting,
  RegistryRouting,
} from '../../src/server/routing/strategies.js';

const USERS = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);
const nodes = (n: number): string[] => Array.from({ length: n }, (_, i) => `node-${i + 1}`);

function movedShare(from: HashRing, to: HashRing): number {
  let moved = 0;
  for (const u of USERS) if (from.owner(u) !== to.owner(u)) moved++;
  return moved / USERS.length;
}

describe('HashRing', () => {
  it('gives every key one owner among its nodes, the same in every process (order of nodes does not matter)', () => {
    const a = new HashRing(['x', 'y', 'z']);
    const b = new HashRing(['z', 'x', 'y', 'x']);
    expect(a.nodes).toEqual(['x', 'y', 'z']);
    for (const u of USERS.slice(0, 2000)) {
      expect(['x', 'y', 'z']).toContain(a.owner(u));
      expect(b.owner(u)).toBe(a.owner(u));
    }
    expect(new HashRing([]).owner('u')).toBeUndefined();
    expect(() => new HashRing(['x'], 0)).toThrow(RangeError);
  });

  it('spreads users evenly: with 160 points per node no node of 4 holds more than 1.25x its share', () => {
    const ring = new HashRing(nodes(4));
    const counts = new Map<string, number>();
    for (const u of USERS) counts.set(ring.owner(u)!, (counts.get(ring.owner(u)!) ?? 0) + 1);
    expect(counts.size).toBe(4);
    for (const c of counts.values()) expect(c / (USERS.length / 4)).toBeLessThan(1.25);
  });

  it('moves about 1/5 of the users from 4 to 5 nodes, and only those to the new node; back to 4 moves the same ones', () => {
    const four = new HashRing(nodes(4));
    const five = new HashRing(nodes(5));
    const share = movedShare(four, five);
    // The ideal is 1/5 = 0.2; a modulo hash would move 4/5.
    expect(share).toBeGreaterThan(0.15);
    expect(share).toBeLessThan(0.25);
    for (const u of USERS) {
      if (four.owner(u) !== five.owner(u)) expect(five.owner(u)).toBe('node-5');
    }
    expect(movedShare(five, four)).toBe(share);
  });
});

describe('routing strategies', () => {
  it('interest subscribes, broadcast sends to all, registry registers every channel', () => {
    expect(new InterestRouting().route()).toEqual({ to: 'subscribers' });
    expect(new InterestRouting().subscribes()).toBe(true);
    expect(new BroadcastRouting().route()).toEqual({ to: 'all' });
    expect(new BroadcastRouting().subscribes() || new BroadcastRouting().registers()).toBe(false);
    expect(new RegistryRouting().route()).toEqual({ to: 'nodes', nodes: [], registered: true });
    expect(new RegistryRouting().registers()).toBe(true);
    expect(createRouting('registry', 'n', { vnodes: 8, settleMs: 10 }).name).toBe('registry');
  });

  describe('hashring', () => {
    function strategy(self: string): { r: HashRingRouting; clock: { now: number } } {
      const clock = { now: 1_000 };
      return { r: new HashRingRouting(self, 160, 5_000, () => clock.now), clock };
    }

    it('sends a message to a user to its owner only once the ring is settled, and to every node until then', () => {
      const { r, clock } = strategy('node-1');
      // Just started: it knows nobody yet.
      expect(r.settled).toBe(false);
      expect(r.route('user:alice')).toEqual({ to: 'all' });
      clock.now += 5_000;
      expect(r.settled).toBe(true);
      expect(r.route('user:alice')).toEqual({ to: 'nodes', nodes: ['node-1'], registered: true });
      expect(r.update(['node-2', 'node-3'])).toBe(true);
      expect(r.settled).toBe(false);
      expect(r.route('user:alice')).toEqual({ to: 'all' });
      clock.now += 5_000;
      const owner = r.owner('alice');
      expect(r.route('user:alice')).toEqual({ to: 'nodes', nodes: [owner], registered: true });
      // Rooms go through the registry, settled or not.
      expect(r.route('room:1')).toEqual({ to: 'nodes', nodes: [], registered: true });
      r.update(['node-2']);
      expect(r.route('room:1')).toEqual({ to: 'nodes', nodes: [], registered: true });
    });

    it('registers only personal channels of users it does not own once settled, and every one while settling', () => {
      const { r, clock } = strategy('node-1');
      r.update(['node-2', 'node-3']);
      const mine = USERS.find((u) => r.owner(u) === 'node-1')!;
      const theirs = USERS.find((u) => r.owner(u) !== 'node-1')!;
      expect(r.registers(`user:${mine}`)).toBe(true);
      clock.now += 5_000;
      expect(r.registers(`user:${mine}`)).toBe(false);
      expect(r.registers(`user:${theirs}`)).toBe(true);
      expect(r.registers('room:1')).toBe(true);
      expect(r.subscribes()).toBe(false);
      // The same members in another order are the same ring: nothing to settle.
      expect(r.update(['node-3', 'node-2'])).toBe(false);
      expect(r.registers(`user:${mine}`)).toBe(false);
    });
  });
});
