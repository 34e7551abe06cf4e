/**
 * TurnBatch: a lone item goes at once (no wait for the next turn), items
 * added while a call is under way gather into one call, and calls go out
 * in the order their items came.
 */
import { expect, it } from 'vitest';
import { TurnBatch } from '../../src/shared/batch.js';

/** A batch whose calls are recorded and answered by the test. */
function recorded(): { batch: TurnBatch<string, string>; calls: string[][]; answer: Array<() => void> } {
  const calls: string[][] = [];
  const answer: Array<() => void> = [];
  const batch = new TurnBatch<string, string>((items) => {
    calls.push(items);
    return new Promise((resolve) => answer.push(() => resolve(items.map((i) => `${i}!`))));
  });
  return { batch, calls, answer };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

it('sends a lone item within the current microtasks when no call is under way', async () => {
  const { batch, calls, answer } = recorded();
  const result = batch.add('a');
  expect(calls).toEqual([]);
  await Promise.resolve();
  await Promise.resolve();
  expect(calls).toEqual([['a']]);
  answer[0]!();
  expect(await result).toBe('a!');
});

it('gives what one piece of code adds together one call', async () => {
  const { batch, calls, answer } = recorded();
  const results = Promise.all(['a', 'b', 'c'].map((i) => batch.add(i)));
  await nextTurn();
  expect(calls).toEqual([['a', 'b', 'c']]);
  answer[0]!();
  expect(await results).toEqual(['a!', 'b!', 'c!']);
});

it('gathers what arrives in separate callbacks while a call is under way, and keeps the order of calls', async () => {
  const { batch, calls, answer } = recorded();
  const first = batch.add('a');
  await Promise.resolve();
  expect(calls).toEqual([['a']]);
  // Two callbacks of one turn, like two sockets read in one poll phase.
  const later = await new Promise<Array<Promise<string>>>((resolve) => {
    const out: Array<Promise<string>> = [];
    setImmediate(() => out.push(batch.add('b')));
    setImmediate(() => {
      out.push(batch.add('c'));
      resolve(out);
    });
  });
  // The first call is still under way: nothing may overtake it, and b and c wait for the turn's end together.
  answer[0]!();
  await first;
  await nextTurn();
  expect(calls).toEqual([['a'], ['b', 'c']]);
  answer[1]!();
  expect(await Promise.all(later)).toEqual(['b!', 'c!']);
});

it('a failed call fails its own items only, and the batch goes on', async () => {
  let fail = true;
  const batch = new TurnBatch<number, number>(async (items) => {
    if (fail) throw new Error('broker down');
    return items.map((i) => i * 2);
  });
  await expect(batch.add(1)).rejects.toThrow('broker down');
  fail = false;
  expect(await Promise.all([batch.add(2), batch.add(3)])).toEqual([4, 6]);
});
