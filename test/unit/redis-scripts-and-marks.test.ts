/**
 * Two pieces of the Redis broker that need no server: a script that Redis
 * does not have yet is sent in full once for every call of one write, not
 * once per call; and the markers that prove a subscription are told apart
 * from publications, and from another node's markers.
 */
import { describe, expect, it } from 'vitest';
import { LuaScript, type CommandClient } from '../../src/brokers/redis/lua.js';
import { SubscriptionMarks } from '../../src/brokers/redis/marks.js';

/** A client whose server knows no script until one is run in full. */
function forgetfulClient(): { client: CommandClient; calls: string[] } {
  const calls: string[] = [];
  let loaded = false;
  const answer = (): Promise<unknown> => new Promise((resolve) => setImmediate(() => resolve('ok')));
  const client = {
    evalsha: (sha: string) => {
      calls.push('evalsha');
      if (!loaded) return new Promise((_, reject) => setImmediate(() => reject(new Error(`NOSCRIPT No matching script (${sha})`))));
      return answer();
    },
    eval: () => {
      calls.push('eval');
      loaded = true;
      return answer();
    },
  } as unknown as CommandClient;
  return { client, calls };
}

describe('LuaScript', () => {
  it('sends the source once when every call of a write hears NOSCRIPT, and the others again by SHA', async () => {
    const { client, calls } = forgetfulClient();
    const script = new LuaScript('test', 'return 1');
    const answers = await Promise.all(Array.from({ length: 20 }, () => script.run(client, ['k'], [])));
    expect(answers).toEqual(Array(20).fill('ok'));
    expect(calls.filter((c) => c === 'eval')).toHaveLength(1);
    expect(calls.filter((c) => c === 'evalsha')).toHaveLength(20 + 19);
    // loaded now: by SHA alone
    calls.length = 0;
    await script.run(client, ['k'], []);
    expect(calls).toEqual(['evalsha']);
  });

  it('keeps the order of the calls: the retries go right behind the source, before anything sent later', async () => {
    // One connection: commands run in the order sent, a turn later; the script exists once a run in full has run.
    let loaded = false;
    const ran: string[] = [];
    const queue: Array<() => void> = [];
    const send = (run: () => unknown): Promise<unknown> =>
      new Promise((resolve, reject) => {
        queue.push(() => {
          try {
            resolve(run());
          } catch (err) {
            reject(err);
          }
        });
        if (queue.length === 1) setImmediate(drain);
      });
    const drain = (): void => {
      for (const job of queue.splice(0)) job();
    };
    const tag = (args: Array<string | number>): string => String(args.at(-1));
    const client = {
      evalsha: (_sha: string, _n: number, ...rest: Array<string | number>) =>
        send(() => {
          if (!loaded) throw new Error('NOSCRIPT No matching script');
          ran.push(tag(rest));
          return 'ok';
        }),
      eval: (_src: string, _n: number, ...rest: Array<string | number>) =>
        send(() => {
          loaded = true;
          ran.push(tag(rest));
          return 'ok';
        }),
    } as unknown as CommandClient;
    const script = new LuaScript('ordered', 'return 3');
    const first = Array.from({ length: 10 }, (_, i) => script.run(client, [], [`c${i}`]));
    // A call made once the first answers (NOSCRIPT) are in, while the source is on its way: it runs after those ten.
    await new Promise((r) => setImmediate(r));
    const later = script.run(client, [], ['late']);
    await Promise.all([...first, later]);
    expect(ran).toEqual([...Array.from({ length: 10 }, (_, i) => `c${i}`), 'late']);
  });

  it('passes on any other error', async () => {
    const client = { evalsha: () => Promise.reject(new Error('WRONGTYPE')), eval: () => Promise.resolve('no') } as unknown as CommandClient;
    await expect(new LuaScript('test', 'return 2').run(client, [], [])).rejects.toThrow('WRONGTYPE');
  });
});

describe('SubscriptionMarks', () => {
  it('sends a marker on the channel and knows it when it comes back; ignores the markers of others', async () => {
    const sent: Array<[string, string]> = [];
    const marks = new SubscriptionMarks(async (name, payload) => void sent.push([name, payload]));
    const other = new SubscriptionMarks(async () => undefined);
    const mark = marks.send('sb:{room}:p');
    expect(sent).toHaveLength(1);
    const [name, payload] = sent[0]!;
    expect(name).toBe('sb:{room}:p');
    expect(mark.came).toBe(false);
    // another node receives it: a marker (not a publication), not its own
    expect(other.take(payload)).toBe(true);
    expect(mark.came).toBe(false);
    // a publication is not a marker
    expect(marks.take('{"o":1,"e":"x","t":1,"p":{"channel":"room","data":1}}')).toBe(false);
    expect(marks.take(payload)).toBe(true);
    expect(mark.came).toBe(true);
    await mark.arrived;
    mark.end();
    // one ended before it came back stays not come
    const late = marks.send('sb:{room}:p');
    late.end();
    expect(marks.take(sent[1]![1])).toBe(true);
    expect(late.came).toBe(false);
  });

  it('never takes a marker of another broker for its own', () => {
    const sent: string[] = [];
    const a = new SubscriptionMarks(async (_n, p) => void sent.push(p));
    const b = new SubscriptionMarks(async (_n, p) => void sent.push(p));
    const ma = a.send('c');
    const mb = b.send('c');
    // both are the first of their broker; the tokens still differ
    expect(sent[0]).not.toBe(sent[1]);
    a.take(sent[1]!);
    b.take(sent[0]!);
    expect(ma.came).toBe(false);
    expect(mb.came).toBe(false);
  });

  it('survives a marker that fails to go out: it just never comes back', async () => {
    const marks = new SubscriptionMarks(() => Promise.reject(new Error('down')));
    const mark = marks.send('c');
    await new Promise((r) => setImmediate(r));
    expect(mark.came).toBe(false);
  });
});
