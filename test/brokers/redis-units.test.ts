/** Pure parts of the Redis broker, without a server: URLs, names, the envelope, the subscription batcher, backoff. */
import { describe, expect, it } from 'vitest';
import { decodeEnvelope, decodeStored, encodeEnvelope, encodeStored } from '../../src/brokers/redis/codec.js';
import { reconnectDelay } from '../../src/shared/backoff.js';
import { BrokerError } from '../../src/brokers/errors.js';
import { RedisKeys } from '../../src/brokers/redis/keys.js';
import { keySlot } from '../../src/brokers/redis/slot.js';
import { InterestSet, type InterestLink } from '../../src/brokers/redis/subscriptions.js';
import { isRedisUrl, parseRedisUrl } from '../../src/brokers/redis/url.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('redis url', () => {
  it('reads standalone, TLS and cluster URLs', () => {
    expect(parseRedisUrl('redis://localhost')).toEqual({ mode: 'standalone', endpoints: [{ host: 'localhost', port: 6379 }], tls: false, db: 0 });
    expect(parseRedisUrl('rediss://u:p%40ss@h.example:6380/2?prefix=app1')).toEqual({
      mode: 'standalone',
      endpoints: [{ host: 'h.example', port: 6380 }],
      tls: true,
      db: 2,
      username: 'u',
      password: 'p@ss',
      prefix: 'app1',
    });
    expect(parseRedisUrl('redis://:secret@[::1]:7000')).toMatchObject({ endpoints: [{ host: '::1', port: 7000 }], password: 'secret' });
    expect(parseRedisUrl('redis+cluster://a:7000,b:7001,c')).toEqual({
      mode: 'cluster',
      endpoints: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 7001 },
        { host: 'c', port: 6379 },
      ],
      tls: false,
      db: 0,
    });
    expect(parseRedisUrl('rediss+cluster://a:1')).toMatchObject({ mode: 'cluster', tls: true });
  });

  it('says what is wrong, without echoing a password', () => {
    expect(() => parseRedisUrl('http://x')).toThrow(/not a redis/);
    expect(() => parseRedisUrl('redis://a:1,b:2')).toThrow(/redis\+cluster/);
    expect(() => parseRedisUrl('redis://h:99999')).toThrow(/host:port/);
    expect(() => parseRedisUrl('redis://h/x')).toThrow(/database/);
    expect(() => parseRedisUrl('redis+cluster://h:1/3')).toThrow(/no database/);
    expect(() => parseRedisUrl('redis://user:hunter2@h:bad')).toThrow(/"h:bad"/);
    expect(() => parseRedisUrl('redis://user:hunter2@h:bad')).not.toThrow(/hunter2/);
    expect(isRedisUrl('redis://h')).toBe(true);
    expect(isRedisUrl('REDIS+CLUSTER://h:1')).toBe(true);
    expect(isRedisUrl('nats://h')).toBe(false);
    expect(isRedisUrl('memory')).toBe(false);
  });
});

describe('redis names', () => {
  it('puts every key of a channel under its hash tag and maps pub/sub names back', () => {
    const k = new RedisKeys('sb');
    const names = [k.meta('chat:a'), k.history('chat:a'), k.pubsub('chat:a'), k.presence('chat:a'), k.registry('chat:a')];
    expect(names).toEqual(['sb:{chat:a}:m', 'sb:{chat:a}:h', 'sb:{chat:a}:p', 'sb:{chat:a}:s', 'sb:{chat:a}:n']);
    expect(new Set(names.map(keySlot)).size).toBe(1);
    // a node's index of its entries lives under the node's hash tag, both parts in one slot
    expect([k.presenceOf('n1'), k.registeredBy('n1'), k.nodes]).toEqual(['sb:node:{n1}:s', 'sb:node:{n1}:r', 'sb:nodes']);
    expect(keySlot(k.presenceOf('n1'))).toBe(keySlot(k.registeredBy('n1')));
    expect(keySlot(k.presenceOf('n1'))).toBe(keySlot('n1'));
    expect(k.channelOf('sb:{chat:a}:p')).toBe('chat:a');
    expect(k.channelOf('sb:ctl')).toBeUndefined();
    expect(k.channelOf('other:{chat:a}:p')).toBeUndefined();
    expect(k.controlOf('n1')).toBe('sb:ctl:n1');
    // routed publications travel outside any hash tag, on classic pub/sub
    expect([k.broadcast, k.inbox('n1'), k.probe('n1')]).toEqual(['sb:all', 'sb:in:n1', 'sb:probe:n1']);
    expect(k.channelOf(k.inbox('n1'))).toBeUndefined();
    expect(() => new RedisKeys('a{b}')).toThrow(/braces/);
  });

  it('computes cluster slots', () => {
    // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    expect(keySlot('123456789')).toBe(0x31c3);
    expect(keySlot('foo')).toBe(12182);
    expect(keySlot('{user1000}.following')).toBe(keySlot('user1000'));
    expect(keySlot('foo{bar}{zap}')).toBe(keySlot('bar'));
    expect(keySlot('foo{{bar}}zap')).toBe(keySlot('{bar'));
    expect(keySlot('{}x')).not.toBe(keySlot('x'));
  });
});

describe('redis envelope', () => {
  it('round-trips publications with and without history', () => {
    const stored = encodeStored({ channel: 'c', data: { a: [1, 'é'] }, from: 'u', ts: 5 });
    expect(decodeEnvelope(encodeEnvelope(stored, 123))).toEqual({ channel: 'c', data: { a: [1, 'é'] }, from: 'u', ts: 123 });
    // what the publish script writes
    expect(decodeEnvelope(`{"o":7,"e":"abc","t":9,"p":${stored}}`)).toEqual({ channel: 'c', data: { a: [1, 'é'] }, from: 'u', ts: 9, offset: 7, epoch: 'abc' });
    expect(decodeStored(stored, 3, 'e')).toEqual({ channel: 'c', data: { a: [1, 'é'] }, from: 'u', offset: 3, epoch: 'e' });
    expect(encodeStored({ channel: 'c', data: 1, ts: 0 })).toBe('{"channel":"c","data":1}');
  });

  it('rejects what is not an envelope', () => {
    for (const bad of ['', 'x', '[]', '{"t":1}', '{"t":"1","p":{"channel":"c"}}', '{"t":1,"p":{"channel":1}}', '{"o":1,"t":1,"p":{"channel":"c"}}']) {
      expect(decodeEnvelope(bad), bad).toBeUndefined();
    }
    expect(decodeStored('nope', 1, 'e')).toBeUndefined();
  });
});

describe('reconnect backoff', () => {
  it('grows from tens of ms and never exceeds the cap', () => {
    expect(reconnectDelay(1, 1000)).toBeLessThan(100);
    for (let i = 1; i < 100; i++) expect(reconnectDelay(i, 1000)).toBeLessThanOrEqual(1000);
    expect(reconnectDelay(50, 1000)).toBeGreaterThan(500);
  });
});

/** A link that records commands and answers them when told to. */
class FakeLink implements InterestLink {
  connected = true;
  sent: Array<{ op: string; channels: string[]; answer(err?: Error): void }> = [];
  failures: Error[] = [];

  send(op: 'subscribe' | 'unsubscribe', channels: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.sent.push({ op, channels, answer: (err) => (err ? reject(err) : resolve()) });
    });
  }

  answerAll(): void {
    for (const s of this.sent) s.answer();
  }
}

function setup(maxBatch?: number): { link: FakeLink; set: InterestSet } {
  const link = new FakeLink();
  const set = new InterestSet(link, (err) => link.failures.push(err), maxBatch);
  return { link, set };
}

describe('subscription batching', () => {
  it('sends one command per tick and kind, and settles each call when its batch is confirmed', async () => {
    const { link, set } = setup();
    let done = 0;
    const calls = ['a', 'b', 'c'].map((c) => set.add(c).then(() => done++));
    await tick();
    expect(link.sent.map((s) => [s.op, s.channels])).toEqual([['subscribe', ['a', 'b', 'c']]]);
    expect(done).toBe(0);
    link.answerAll();
    await Promise.all(calls);
    expect(done).toBe(3);

    link.sent = [];
    await Promise.all([set.remove('a'), set.remove('b'), set.add('d'), set.remove('never'), tick().then(() => link.answerAll())]);
    expect(link.sent.map((s) => [s.op, s.channels])).toEqual([
      ['subscribe', ['d']],
      ['unsubscribe', ['a', 'b']],
    ]);
    expect(set.channels().sort()).toEqual(['c', 'd']);
  });

  it('splits big batches at maxBatch', async () => {
    const { link, set } = setup(2);
    const calls = ['a', 'b', 'c', 'd', 'e'].map((c) => set.add(c));
    await tick();
    expect(link.sent.map((s) => s.channels)).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    link.answerAll();
    await Promise.all(calls);
  });

  it('lets the last call for a channel win, and waits for commands still in flight', async () => {
    const { link, set } = setup();
    await Promise.all([set.add('x'), set.remove('x')]);
    expect(link.sent).toEqual([]);

    const first = set.add('y');
    await tick();
    expect(link.sent).toHaveLength(1);
    // a second subscribe needs no command, but settles only after the first is confirmed
    let second = false;
    const again = set.add('y').then(() => (second = true));
    await tick();
    await tick();
    expect(link.sent).toHaveLength(1);
    expect(second).toBe(false);
    link.answerAll();
    await Promise.all([first, again]);
    expect(second).toBe(true);
  });

  it('fails subscribes fast while down, keeps them wanted, and restores everything on reconnection', async () => {
    const { link, set } = setup();
    const a = set.add('a');
    await tick();
    link.answerAll();
    await a;
    expect(await set.restore()).toBe(true);
    expect(set.inSync).toBe(true);

    link.connected = false;
    set.lost();
    expect(set.inSync).toBe(false);
    await expect(set.add('b')).rejects.toBeInstanceOf(BrokerError);
    await expect(set.remove('a')).resolves.toBeUndefined();
    await expect(set.remove('zz')).resolves.toBeUndefined();

    link.connected = true;
    link.sent = [];
    const restored = set.restore();
    expect(link.sent.map((s) => [s.op, s.channels])).toEqual([['subscribe', ['b']]]);
    expect(set.inSync).toBe(false);
    link.answerAll();
    expect(await restored).toBe(true);
    expect(set.inSync).toBe(true);
  });

  it('rejects the subscribes of a failed command and asks the link to start over', async () => {
    const { link, set } = setup();
    const a = set.add('a');
    const gone = set.remove('b');
    await tick();
    link.sent[0]!.answer(new Error('ERR something'));
    await expect(a).rejects.toThrow(/did not confirm/);
    await expect(gone).resolves.toBeUndefined();
    expect(link.failures.map((e) => e.message)).toEqual(['ERR something']);
  });

  it('ignores answers from a connection that was lost meanwhile', async () => {
    const { link, set } = setup();
    const a = set.add('a');
    await tick();
    set.lost();
    link.sent[0]!.answer(new Error('Connection is closed.'));
    await expect(a).rejects.toThrow();
    expect(link.failures).toEqual([]);
  });

  it('rejects what is pending on close and refuses new calls', async () => {
    const { set } = setup();
    const a = set.add('a');
    set.close();
    await expect(a).rejects.toThrow(/closed/);
    await expect(set.add('b')).rejects.toThrow(/closed/);
  });
});
