/**
 * The channel order as the gateway configures it: a gap filled at once, a
 * gap history cannot cover reported as lost, and an outage held until the
 * catch-up. (NATS and RabbitMQ configurations: nats-reorder, amqp-sequencer.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BrokerPublication } from '../../src/brokers/broker.js';
import { ChannelOrder, type FilledRange } from '../../src/brokers/channel-order.js';

const C = 'feed';
const pub = (offset: number, epoch = 'e1'): BrokerPublication => ({ channel: C, data: offset, ts: 0, offset, epoch });

function gateway(history: { epoch: string; earliest: number; top: number; fails?: boolean }) {
  const got: number[] = [];
  const lost: string[] = [];
  const gaps: Array<[number, number]> = [];
  const order = new ChannelOrder({
    deliver: (p) => void got.push(p.offset!),
    predecessor: (p) => p.offset! - 1,
    fill: async (_channel, from, _to, limit): Promise<FilledRange> => {
      if (history.fails) throw new Error('unreachable');
      const messages = [];
      for (let o = Math.max(from, history.earliest); o <= history.top && messages.length < limit; o++) messages.push({ channel: C, data: o, offset: o, epoch: history.epoch });
      return { epoch: history.epoch, messages, trimmed: from < history.earliest || from - 1 > history.top };
    },
    lost: (channel) => void lost.push(channel),
    onGap: (_channel, after, next) => void gaps.push([after, next]),
    holdMs: 0,
    maxHeld: 3,
    fillAttempts: 1,
  });
  return { order, got, lost, gaps, history };
}

describe('channel order, gateway configuration', () => {
  afterEach(() => vi.useRealTimers());

  it('fills a gap from history at once, then delivers what it held', async () => {
    const g = gateway({ epoch: 'e1', earliest: 1, top: 5 });
    g.order.start(C, 1, 'e1');
    g.order.push(pub(4));
    g.order.push(pub(5));
    expect(g.got).toEqual([]);
    await vi.waitFor(() => expect(g.got).toEqual([2, 3, 4, 5]));
    expect(g.gaps).toEqual([[1, 4]]);
    expect(g.lost).toEqual([]);
  });

  it('reports a gap history no longer covers as lost and forgets the channel', async () => {
    const g = gateway({ epoch: 'e1', earliest: 3, top: 5 });
    g.order.start(C, 1, 'e1');
    g.order.push(pub(4));
    await vi.waitFor(() => expect(g.lost).toEqual([C]));
    expect(g.got).toEqual([]);
    expect(g.order.size).toBe(0);
  });

  it('holds everything while suspended, then catches up from the position and delivers each once, in order', async () => {
    const g = gateway({ epoch: 'e1', earliest: 1, top: 4 });
    g.order.push(pub(1));
    g.order.suspend();
    g.order.push(pub(4));
    expect(g.got).toEqual([1]);
    await g.order.catchUp();
    expect(g.got).toEqual([1, 2, 3, 4]);
    expect(g.gaps).toEqual([]);
  });

  it('a catch-up in another epoch, or with too much held, loses the channel', async () => {
    const g = gateway({ epoch: 'e2', earliest: 1, top: 9 });
    g.order.push(pub(1));
    g.order.suspend();
    await g.order.catchUp();
    expect(g.lost).toEqual([C]);
    g.order.push(pub(1, 'e2'));
    g.order.suspend();
    for (const o of [3, 4, 5, 6]) g.order.push(pub(o, 'e2'));
    expect(g.lost).toEqual([C, C]);
    expect(g.got).toEqual([1, 1]);
  });

  it('a publication of a new epoch that arrives while the catch-up reads holds on: the read finds the numbering restarted and loses the channel', async () => {
    const g = gateway({ epoch: 'e2', earliest: 1, top: 1 });
    g.order.push(pub(1));
    g.order.suspend();
    const catchingUp = g.order.catchUp();
    // The catch-up has taken the channel out of suspension and is reading; the broker (restarted empty) delivers anew.
    g.order.push(pub(1, 'e2'));
    await catchingUp;
    expect(g.lost).toEqual([C]);
    expect(g.got).toEqual([1]);
  });

  it('a catch-up that cannot read history passes over the gap', async () => {
    const g = gateway({ epoch: 'e1', earliest: 1, top: 4, fails: true });
    g.order.push(pub(1));
    g.order.suspend();
    g.order.push(pub(4));
    await g.order.catchUp();
    expect(g.got).toEqual([1, 4]);
    expect(g.lost).toEqual([]);
  });
});
