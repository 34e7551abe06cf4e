/**
 * TurnBatch: what is added within one turn of the event loop, in one
 * callback or in several, goes as one call at the turn's check phase; calls
 * go out in the order their items came; a failed call fails only its items.
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

it('sends a lone item at the check phase of the turn it was added in', async () => {
  const { batch, calls, answer } = recorded();
  const result = batch.add('a');
  await Promise.resolve();
  expect(calls).toEqual([]);
  await nextTurn();
  expect(calls).toEqual([['a']]);
  answer[0]!();
  expect(await result).toBe('a!');
});

it('gives what separate callbacks of one turn add one call, and keeps the order of calls', async () => {
  const { batch, calls, answer } = recorded();
  // Two callbacks of one turn, like two sockets read in one poll phase.
  const first = await new Promise<Array<Promise<string>>>((resolve) => {
    const out: Array<Promise<string>> = [];
    setImmediate(() => out.push(batch.add('a')));
    setImmediate(() => {
      out.push(batch.add('b'));
      resolve(out);
    });
  });
  await nextTurn();
  expect(calls).toEqual([['a', 'b']]);
  // A later turn's items make the next call, sent without waiting for the first answer.
  const later = batch.add('c');
  await nextTurn();
  expect(calls).toEqual([['a', 'b'], ['c']]);
  answer[1]!();
  answer[0]!();
  expect(await Promise.all([...first, later])).toEqual(['a!', 'b!', 'c!']);
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
