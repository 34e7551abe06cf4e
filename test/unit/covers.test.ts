/**
 * The one recovery check (`covers`) and what each routing strategy answers
 * about owners and membership, which the gateway asks instead of testing
 * for the hash-ring strategy's class.
 */
import { describe, expect, it } from 'vitest';
import { covers, type HistoryPage } from '../../src/brokers/history.js';
import { BroadcastRouting, HashRingRouting, InterestRouting, RegistryRouting } from '../../src/server/routing/strategies.js';

const page = (offset: number, earliest: number, epoch = 'e1'): HistoryPage => ({ offset, epoch, earliest, messages: [] });

describe('covers', () => {
  it('holds when the page has everything after the position, in the same epoch', () => {
    expect(covers(page(10, 1), { offset: 4, epoch: 'e1' })).toBe(true);
    expect(covers(page(10, 5), { offset: 4, epoch: 'e1' })).toBe(true);
    expect(covers(page(10, 11), { offset: 10, epoch: 'e1' })).toBe(true);
  });

  it('fails for another epoch, a position past the channel, or messages trimmed away', () => {
    expect(covers(page(10, 1, 'e2'), { offset: 4, epoch: 'e1' })).toBe(false);
    expect(covers(page(10, 1), { offset: 11, epoch: 'e1' })).toBe(false);
    expect(covers(page(10, 6), { offset: 4, epoch: 'e1' })).toBe(false);
  });
});

describe('routing strategies: owner and membership', () => {
  it('strategies that assign no users name no owner and ignore membership changes', () => {
    for (const r of [new InterestRouting(), new BroadcastRouting(), new RegistryRouting()]) {
      expect(r.owner('alice')).toBeUndefined();
      expect(r.membersChanged(['n2', 'n3'])).toBe(false);
    }
  });

  it('the hash ring names an owner among its nodes and reports a change of membership once', () => {
    const r = new HashRingRouting('n1', 160, 5_000);
    expect(r.owner('alice')).toBe('n1');
    expect(r.membersChanged(['n2', 'n3'])).toBe(true);
    expect(r.membersChanged(['n3', 'n2'])).toBe(false);
    expect(['n1', 'n2', 'n3']).toContain(r.owner('alice'));
  });
});
