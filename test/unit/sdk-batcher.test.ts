/**
 * The server SDK's batcher: calls past `maxInFlight` leave together, and a
 * channel never has two requests under way, so a later call on it cannot
 * overtake an earlier one that is still at the node.
 */
import { describe, expect, it } from 'vitest';
import type { BatchResult } from '../../src/protocol/index.js';
import { Batcher, type KeyedCommand, type Settled } from '../../src/server-sdk/batcher.js';

/** A request the test answers when it likes. */
interface Held {
  what: string;
  answer: () => void;
}

function setup(maxInFlight: number): { batcher: Batcher; sent: Held[] } {
  const sent: Held[] = [];
  let offset = 0;
  const one = (command: KeyedCommand): Promise<Settled> =>
    new Promise((resolve) => sent.push({ what: label(command), answer: () => resolve({ answer: { offset: ++offset, epoch: 'e' }, replayed: false }) }));
  const many = (commands: KeyedCommand[]): Promise<BatchResult[]> =>
    new Promise((resolve) => sent.push({ what: commands.map(label).join(','), answer: () => resolve(commands.map(() => ({ offset: ++offset, epoch: 'e' }))) }));
  return { batcher: new Batcher(maxInFlight, one, many), sent };
}

function label(command: KeyedCommand): string {
  return 'publish' in command ? `${command.publish.channel}:${String(command.publish.data)}` : `user:${command.send.user}:${String(command.send.data)}`;
}

const publish = (channel: string, data: number): KeyedCommand => ({ publish: { channel, data, idempotencyKey: `${channel}-${data}` } });
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('the server SDK batcher', () => {
  it('holds a call back while an earlier request on its channel is under way, even when another finished first', async () => {
    const { batcher, sent } = setup(2);
    const a = batcher.run(publish('x', 1), undefined);
    const b = batcher.run(publish('y', 1), undefined);
    const c = batcher.run(publish('x', 2), undefined);
    const d = batcher.run(publish('z', 1), undefined);
    expect(sent.map((s) => s.what)).toEqual(['x:1', 'y:1']);
    sent[1]!.answer(); // y answers first: z may go, x:2 must wait for x:1
    await b;
    await tick();
    expect(sent.map((s) => s.what)).toEqual(['x:1', 'y:1', 'z:1']);
    sent[0]!.answer();
    await a;
    await tick();
    expect(sent.map((s) => s.what)).toEqual(['x:1', 'y:1', 'z:1', 'x:2']);
    sent[2]!.answer();
    sent[3]!.answer();
    expect((await c).answer.offset).toBeGreaterThan((await a).answer.offset ?? Infinity);
    await d;
  });

  it('sends what waited as one batch, in call order, once a place is free', async () => {
    const { batcher, sent } = setup(1);
    const first = batcher.run(publish('x', 1), undefined);
    const rest = [2, 3, 4].map((n) => batcher.run(publish(n % 2 === 0 ? 'x' : 'y', n), undefined));
    expect(sent.map((s) => s.what)).toEqual(['x:1']);
    sent[0]!.answer();
    await first;
    await tick();
    expect(sent.map((s) => s.what)).toEqual(['x:1', 'x:2,y:3,x:4']);
    sent[1]!.answer();
    expect((await Promise.all(rest)).map((r) => r.answer.offset)).toEqual([2, 3, 4]);
  });
});
