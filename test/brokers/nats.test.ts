/**
 * The broker conformance suite against a real `nats-server -js` on a free
 * port, in both modes of the NATS broker: interest mode (a subscription per
 * channel) and all mode (every node receives every channel). Each test gets
 * its own prefix, whose streams and bucket are deleted afterwards; any fault
 * the brokers report surviving fails the test.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Broker, Route } from '../../src/brokers/broker.js';
import { createBroker } from '../../src/brokers/index.js';
import { dropNatsPrefix } from '../../src/brokers/nats/admin.js';
import { NatsBroker } from '../../src/brokers/nats/nats-broker.js';
import { parseNatsUrl } from '../../src/brokers/nats/url.js';
import { startNats, streamSeen, type NatsProcess } from '../helpers/nats-server.js';
import { STALE_MARK_MS } from '../../src/brokers/nats/presence.js';
import type { PresenceItem } from '../../src/brokers/broker.js';
import { brokerSuite, type BrokerBackend } from './suite.js';
import { sleep } from '../helpers/wait.js';

let server: NatsProcess | undefined;
beforeAll(async () => {
  server = await startNats();
});
afterAll(async () => {
  await server?.stop();
});

/**
 * nats-server 2.9.10, Debian 12's and so the one CI installs, now and then
 * panics with a nil pointer in its message-get handler (`jsMsgGetRequest`)
 * while nodes publish to one subject and read its last message at once:
 * in 2 of about 80 runs of this file here, and in one CI run. A test
 * during which the server process died on its own fails with the panic
 * (the `afterEach` below), the server is restarted, and that test alone
 * runs once more; a failure with the server still up is never run again.
 */
const serverCrashed = { retry: { count: 1, condition: () => server?.crash !== undefined } };
beforeEach(async () => {
  const crash = server?.crash;
  if (crash === undefined) return;
  console.warn(`nats-server crashed under the previous test, which is run once more; restarting it. ${crash}`);
  await server!.restart();
});
afterEach(() => server?.assertAlive());

function backend(routes: ReadonlyArray<Route['to']>): () => Promise<BrokerBackend> {
  return async () => {
    const prefix = `t${randomBytes(3).toString('hex')}`;
    const faults: string[] = [];
    return {
      make: () => new NatsBroker(server!.url, { prefix, routes, onError: (err, where) => void faults.push(`${where}: ${err.message}`) }),
      cleanup: async () => {
        await dropNatsPrefix(server!.url, prefix);
        if (faults.length > 0) throw new Error(`the brokers reported faults:\n${faults.join('\n')}`);
      },
    };
  };
}

describe('nats broker', serverCrashed, () => {
  brokerSuite('nats', backend(['subscribers']), { routes: ['subscribers'] });
  brokerSuite('nats (all mode)', backend(['all']), { routes: ['subscribers', 'all'] });

  describe('nats broker specifics', () => {
    it('reads seed lists, credentials, prefix and replicas from the URL', () => {
      expect(parseNatsUrl('nats://h1:4223,h2,[::1]:4224?prefix=app&replicas=3')).toEqual({
        servers: ['h1:4223', 'h2:4222', '[::1]:4224'],
        prefix: 'app',
        replicas: 3,
      });
      expect(parseNatsUrl('nats://me:p%40ss@h1')).toMatchObject({ user: 'me', pass: 'p@ss', servers: ['h1:4222'] });
      expect(parseNatsUrl('nats://s3cret@h1:4222/')).toMatchObject({ token: 's3cret' });
      expect(() => parseNatsUrl('nats://')).toThrow(/no host/);
      expect(() => parseNatsUrl('nats://h1:99999')).toThrow(/host:port/);
      expect(() => parseNatsUrl('nats://h1?replicas=9')).toThrow(/replicas/);
    });

    it('createBroker picks the mode from the routes the node will use', async () => {
      expect((await createBroker('nats://127.0.0.1:1', { routes: ['subscribers'] })).routes).toEqual(['subscribers']);
      expect((await createBroker('nats://127.0.0.1:1', { routes: ['all'] })).routes).toEqual(['subscribers', 'all']);
      expect((await createBroker('nats://127.0.0.1:1')).kind).toBe('nats');
    });

    it('start() rejects with a clear message when no server answers', async () => {
      const broker = new NatsBroker('nats://127.0.0.1:1', { connectTimeoutMs: 1000 });
      const handlers = { onPublication: () => undefined, onControl: () => undefined, onReadyChange: () => undefined };
      await expect(broker.start('n1', handlers)).rejects.toThrow(/nats at 127\.0\.0\.1:1 was not reachable/);
      await broker.close();
    });

    it('refuses the routes it does not carry and the registry, with a reason', async () => {
      const prefix = `t${randomBytes(3).toString('hex')}`;
      const broker = new NatsBroker(server!.url, { prefix });
      await broker.start('n1', { onPublication: () => undefined, onControl: () => undefined, onReadyChange: () => undefined });
      try {
        const pub = { channel: 'chat:x', data: 1, ts: Date.now() };
        await expect(broker.publish(pub, null, { to: 'all' })).rejects.toThrow(/interest mode/);
        await expect(broker.publish(pub, null, { to: 'nodes', nodes: ['a'], registered: false })).rejects.toThrow(/not supported by the NATS broker/);
        // no registry at all: nothing to call and be refused at run time
        expect((broker as Broker).registry).toBeUndefined();
      } finally {
        await broker.close();
        await dropNatsPrefix(server!.url, prefix);
      }
    });

    it('nodes creating the same history streams at the same moment all publish, each offset once', async () => {
      const prefix = `t${randomBytes(3).toString('hex')}`;
      const handlers = { onPublication: () => undefined, onControl: () => undefined, onReadyChange: () => undefined };
      const brokers = Array.from({ length: 6 }, () => new NatsBroker(server!.url, { prefix }));
      try {
        await Promise.all(brokers.map((b, i) => b.start(`race-${i}`, handlers)));
        // Each round is a policy no node has used: its streams are created by whichever publish comes first.
        for (let round = 0; round < 15; round++) {
          const policy = { size: 100 + round, ttlMs: 60_000 };
          const results = await Promise.all(brokers.map((b, i) => b.publish({ channel: `race:r${round}`, data: i, ts: Date.now() }, policy)));
          expect(results.map((r) => r.offset).sort((a, b) => a! - b!)).toEqual([1, 2, 3, 4, 5, 6]);
        }
      } finally {
        await Promise.all(brokers.map((b) => b.close()));
        await dropNatsPrefix(server!.url, prefix);
      }
    });

    it('carries channel names with dots and every allowed character, and many presence entries', async () => {
      const prefix = `t${randomBytes(3).toString('hex')}`;
      const got: unknown[] = [];
      const broker = new NatsBroker(server!.url, { prefix });
      await broker.start('host.example.com-1-x', {
        onPublication: (p) => void got.push(p.channel),
        onControl: (c) => void got.push(`ctl:${c}`),
        onReadyChange: () => undefined,
      });
      try {
        const channels = ['a.b.c:d', 'room:x.>', 'room:*', 'user:me@ex.com=1,2', 'ns:-_.'];
        for (const c of channels) await broker.subscribe(c);
        for (const c of channels) await broker.publish({ channel: c, data: c, ts: Date.now() }, { size: 10, ttlMs: 60_000 });
        await broker.sendControl('host.example.com-1-x', 'self');
        await vi.waitUntil(() => got.length >= channels.length + 1, { timeout: 5000, interval: 20 }).catch(() => undefined); // the assertion below says what is missing
        expect([...got].sort()).toEqual([...channels, 'ctl:self'].sort());
        for (const c of channels) {
          expect((await broker.store.history(c, { since: 0, limit: 10 }, { size: 10, ttlMs: 60_000 })).messages.map((m) => m.data)).toEqual([c]);
        }

        const N = 3000;
        const entries = Array.from({ length: N }, (_, i) => ({
          channel: 'room:big.one',
          entry: { user: `u${i}`, session: `s.${i}/x`, node: 'n1' },
        }));
        const t0 = Date.now();
        await broker.store.presenceAdd(entries);
        expect(await broker.store.presence('room:big.one')).toHaveLength(N);
        await broker.store.presenceRemove(entries.slice(0, N / 2));
        expect(await broker.store.presence('room:big.one')).toHaveLength(N / 2);
        expect(Date.now() - t0).toBeLessThan(15_000);
      } finally {
        await broker.close();
        await dropNatsPrefix(server!.url, prefix);
      }
    });

    describe('presence owned by nodes', () => {
      let prefix = '';
      let broker: NatsBroker;
      const bucketStream = (): string => `KV_${prefix}_presence_v2`;
      beforeEach(async () => {
        prefix = `t${randomBytes(3).toString('hex')}`;
        broker = new NatsBroker(server!.url, { prefix });
        await broker.start('reader', { onPublication: () => undefined, onControl: () => undefined, onReadyChange: () => undefined });
      });
      afterEach(async () => {
        vi.useRealTimers();
        await broker.close();
        await dropNatsPrefix(server!.url, prefix);
      });
      const items = (node: string, channels: string[], perChannel: number): PresenceItem[] =>
        channels.flatMap((channel) => Array.from({ length: perChannel }, (_, i) => ({ channel, entry: { user: `u${i}`, session: `${node}/${channel}/${i}`, node } })));
      const nodesOf = async (channel: string): Promise<string[]> => [...new Set((await broker.store.presence(channel)).map((e) => e.node))].sort();

      it('drops a node whose id holds dots and wildcards on every channel in one step, and no other node; the bucket has no max age', async () => {
        const channels = ['a.b.c:d', 'room:*', 'room:x.>'];
        // ids that a careless subject filter would confuse with one another
        const dropped = 'host.a';
        const kept = ['host.a.b', 'host', 'h*', 'h>', 'ü n/1'];
        await broker.store.presenceAdd(items(dropped, channels, 300));
        for (const node of kept) await broker.store.presenceAdd(items(node, channels, 3));
        expect((await broker.store.nodesWithEntries()).sort()).toEqual([dropped, ...kept].sort());

        await broker.store.dropNode(dropped);
        for (const channel of channels) expect(await nodesOf(channel)).toEqual([...kept].sort());
        expect((await broker.store.nodesWithEntries()).sort()).toEqual([...kept].sort());
        // the entries are gone from the stream, not hidden: what is left is the others' entries and one mark per node
        const left = kept.length * channels.length * 3 + 1 + kept.length;
        expect((await streamSeen(server!, bucketStream()))?.messages).toBe(left);
        expect((await streamSeen(server!, bucketStream()))?.maxAgeNs).toBe(0);
      });

      it('removed entries leave nothing behind, and an entry added again right after its removal stays', async () => {
        const room = 'room:churn';
        const all = items('n1', [room], 200);
        await broker.store.presenceAdd(all);
        await broker.store.presenceRemove(all);
        expect(await broker.store.presence(room)).toEqual([]);
        // the purge markers go too, in the background: the node's mark alone stays
        await vi.waitFor(async () => expect((await streamSeen(server!, bucketStream()))?.messages).toBe(1), { timeout: 5_000, interval: 50 });

        // removed and added again at once (a session leaving a channel and joining it again): the values
        // reach the server after the purge markers and before the markers' own purge, which, bound to
        // each marker's sequence, leaves them alone
        const again = all.slice(0, 100);
        await Promise.all([broker.store.presenceRemove(again), broker.store.presenceAdd(again)]);
        await vi.waitFor(async () => expect((await streamSeen(server!, bucketStream()))?.messages).toBe(1 + again.length), { timeout: 5_000, interval: 50 });
        expect(await broker.store.presence(room)).toHaveLength(again.length);
        expect(await broker.store.nodesWithEntries()).toEqual(['n1']);
      });

      it("lists a node only while it holds entries, forgets a stale mark, and the node's next add marks it again", async () => {
        const room = 'room:marks';
        const gone = items('gone', [room], 2);
        await broker.store.presenceAdd([...gone, ...items('stays', [room], 1)]);
        await broker.store.presenceRemove(gone);
        expect(await broker.store.nodesWithEntries()).toEqual(['stays']);
        // a fresh mark stays: its node may be adding an entry right now
        await vi.waitFor(async () => expect((await streamSeen(server!, bucketStream()))?.messages).toBe(3), { timeout: 5_000, interval: 50 });

        vi.useFakeTimers({ toFake: ['Date'] });
        vi.setSystemTime(Date.now() + STALE_MARK_MS + 60_000);
        expect(await broker.store.nodesWithEntries()).toEqual(['stays']);
        // the stale mark of `gone` went; that of `stays` (as old, but its node holds an entry) did not
        await vi.waitFor(async () => expect((await streamSeen(server!, bucketStream()))?.messages).toBe(2), { timeout: 5_000, interval: 50 });

        await broker.store.presenceAdd(gone.slice(0, 1));
        expect((await broker.store.nodesWithEntries()).sort()).toEqual(['gone', 'stays']);
        expect((await streamSeen(server!, bucketStream()))?.messages).toBe(4);
      });
    });
  });
});
