/**
 * The broker conformance suite: what every `Broker` must do, checked
 * through the interface only, with two or three brokers (nodes) on one
 * backend. Each broker implementation's test file runs it against a real
 * backend: `brokerSuite('redis', async () => …)`.
 *
 * Each test uses channel names and node ids of its own, so a backend that
 * is not wiped between tests still gives every test a clean slate.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type {
  Broker,
  BrokerHandlers,
  BrokerPublication,
  PresenceEntry,
  Route,
} from '../../src/brokers/broker.js';
import type { HistoryPage, HistoryPolicy } from '../../src/brokers/history.js';
import type { PublishResult } from '../../src/protocol/index.js';
import { sleep } from '../helpers/wait.js';

export interface BrokerBackend {
  /** A new, not yet started broker on the shared backend. */
  make(nodeId: string): Broker;
  /** Called after each test, once the suite has closed every broker it made. */
  cleanup(): Promise<void>;
}

/** How long a "nothing else arrives" check listens after a barrier has arrived. */
const QUIET_MS = 200;
const WAIT_MS = 5_000;

const LONG: HistoryPolicy = { size: 1000, ttlMs: 60_000 };

/** What a started broker has handed to its node. */
interface Recorded {
  pubs: BrokerPublication[];
  controls: string[];
  readyChanges: boolean[];
}

interface Node extends Recorded {
  id: string;
  broker: Broker;
  /** The data of the publications received on `channel`, in arrival order. */
  got(channel: string): unknown[];
}

function recorder(): { rec: Recorded; handlers: BrokerHandlers } {
  const rec: Recorded = { pubs: [], controls: [], readyChanges: [] };
  return {
    rec,
    handlers: {
      onPublication: (pub) => void rec.pubs.push(pub),
      onControl: (payload) => void rec.controls.push(payload),
      onReadyChange: (ready) => void rec.readyChanges.push(ready),
    },
  };
}

const uid = (): string => randomBytes(4).toString('hex');
const bySession = (a: PresenceEntry, b: PresenceEntry): number => a.session.localeCompare(b.session);
const offsets = (page: HistoryPage): Array<number | undefined> => page.messages.map((m) => m.offset);
const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

const ALL: Route = { to: 'all' };
const toNodes = (nodes: string[], registered = false): Route => ({ to: 'nodes', nodes, registered });

export interface SuiteOptions {
  /**
   * The routes the broker declares (`Broker.routes`); the routing tests of
   * the others are not run for it. A test checks the declaration. Default: all.
   */
  routes?: ReadonlyArray<Route['to']>;
  /** Whether the broker has `readSubscribing`; its tests run only then. A test checks the declaration. Default: no. */
  readsSubscribing?: boolean;
}

export function brokerSuite(name: string, factory: () => Promise<BrokerBackend>, options: SuiteOptions = {}): void {
  const routes = options.routes ?? ['subscribers', 'all', 'nodes'];
  /** A test of a route the broker does not carry is not declared at all (not skipped). */
  const withAll = routes.includes('all') ? it : undefined;
  const withNodes = routes.includes('nodes') ? it : undefined;
  const withBoth = routes.includes('all') && routes.includes('nodes') ? it : undefined;
  const withReadSubscribing = options.readsSubscribing ? it : undefined;
  describe(`broker conformance: ${name}`, () => {
    let backend: BrokerBackend;
    let made: Broker[] = [];
    /** Unique per test: channels `<ns>:<tag>-<name>` and node ids `n-<tag>-<name>`. */
    let tag = '';

    beforeEach(async () => {
      backend = await factory();
      made = [];
      tag = uid();
    });

    afterEach(async () => {
      await Promise.all(made.map((b) => b.close()));
      await backend.cleanup();
    });

    const ch = (label: string, ns = 'chat'): string => `${ns}:${tag}-${label}`;

    function make(label: string): { id: string; broker: Broker } {
      const id = `n-${tag}-${label}`;
      const broker = backend.make(id);
      made.push(broker);
      return { id, broker };
    }

    async function node(label: string): Promise<Node> {
      const { id, broker } = make(label);
      const { rec, handlers } = recorder();
      await broker.start(id, handlers);
      return {
        id,
        broker,
        ...rec,
        got: (channel) => rec.pubs.filter((p) => p.channel === channel).map((p) => p.data),
      };
    }

    async function nodes(n: number): Promise<Node[]> {
      return Promise.all(['a', 'b', 'c'].slice(0, n).map((l) => node(l)));
    }

    const publish = (n: Node, channel: string, data: unknown, history: HistoryPolicy | null = null, from?: string): Promise<PublishResult> =>
      n.broker.publish({ channel, data, ts: Date.now(), ...(from === undefined ? {} : { from }) }, history);

    /** Publish along `route`, with history unless told otherwise. */
    const send = (n: Node, channel: string, data: unknown, route: Route, history: HistoryPolicy | null = LONG): Promise<PublishResult> =>
      n.broker.publish({ channel, data, ts: Date.now() }, history, route);

    /** The offsets of the publications received on `channel`, in arrival order. */
    const offsetsOf = (n: Node, channel: string): Array<number | undefined> =>
      n.pubs.filter((p) => p.channel === channel).map((p) => p.offset);

    describe('lifecycle', () => {
      it('declares the routes it carries', () => {
        expect([...make('routes').broker.routes].sort()).toEqual([...routes].sort());
      });

      it(`${options.readsSubscribing ? 'has' : 'has no'} readSubscribing`, () => {
        expect(typeof make('reads').broker.readSubscribing).toBe(options.readsSubscribing ? 'function' : 'undefined');
      });

      it('is ready once started, and close() is idempotent', async () => {
        const [a] = await nodes(1);
        expect(a!.broker.ready).toBe(true);
        expect(a!.readyChanges).not.toContain(false);
        await a!.broker.close();
        await a!.broker.close();
        await Promise.all([a!.broker.close(), a!.broker.close()]);
      });

      it('a closed broker receives no more publications or control messages', async () => {
        const [a, b] = await nodes(2);
        const c = ch('closed');
        await a!.broker.subscribe(c);
        await b!.broker.subscribe(c);
        await publish(a!, c, 'before');
        await vi.waitFor(() => expect(b!.got(c)).toEqual(['before']), { timeout: 5_000, interval: 20 });

        await b!.broker.close();
        await publish(a!, c, 'after');
        await a!.broker.sendControl(null, 'ctl-after');
        await a!.broker.sendControl(b!.id, 'ctl-to-closed');
        await vi.waitFor(() => expect(a!.got(c)).toEqual(['before', 'after']), { timeout: 5_000, interval: 20 });
        await vi.waitFor(() => expect(a!.controls).toEqual(['ctl-after']), { timeout: 5_000, interval: 20 });
        // Pause, not a wait: nothing else may arrive.
        await sleep(QUIET_MS);
        expect(b!.got(c)).toEqual(['before']);
        expect(b!.controls).toEqual([]);
      });
    });

    describe('interest', () => {
      it('delivers a channel only to nodes subscribed to it, from any node', async () => {
        const [a, b, c] = await nodes(3);
        const room = ch('room');
        const other = ch('other');

        await publish(a!, room, 'nobody listens');
        await b!.broker.subscribe(room);
        await c!.broker.subscribe(other);
        const data = { text: 'héllo ✓', n: 1.5, nested: { list: [1, null, true] } };
        await publish(a!, room, data, null, 'u1');
        await vi.waitFor(() => expect(b!.got(room)).toEqual([data]), { timeout: 5_000, interval: 20 });
        const [pub] = b!.pubs;
        expect(pub).toMatchObject({ channel: room, data, from: 'u1' });
        expect(typeof pub!.ts).toBe('number');

        // a subscribed publisher receives its own publications too
        await a!.broker.subscribe(room);
        await publish(a!, room, 'two');
        await vi.waitFor(() => expect(a!.got(room)).toEqual(['two']), { timeout: 5_000, interval: 20 });
        await vi.waitFor(() => expect(b!.got(room)).toEqual([data, 'two']), { timeout: 5_000, interval: 20 });

        // Pause, not a wait: nothing else may arrive.
        await sleep(QUIET_MS);
        expect(c!.pubs).toEqual([]);
      });

      it('stops delivering after unsubscribe', async () => {
        const [a, b, c] = await nodes(3);
        const room = ch('room');
        await a!.broker.subscribe(room);
        await b!.broker.subscribe(room);
        await publish(c!, room, 1);
        await vi.waitFor(() => expect(b!.got(room)).toEqual([1]), { timeout: 5_000, interval: 20 });

        await b!.broker.unsubscribe(room);
        await publish(c!, room, 2);
        await publish(b!, room, 3);
        // Without history there is no order across publishing nodes (see
        // `Broker`): on a NATS cluster, c's and b's servers race. Each once.
        await vi.waitFor(() => expect([...a!.got(room)].sort()).toEqual([1, 2, 3]), { timeout: 5_000, interval: 20 });
        // Pause, not a wait: nothing else may arrive.
        await sleep(QUIET_MS);
        expect(b!.got(room)).toEqual([1]);

        // subscribing again resumes delivery (without what was missed)
        await b!.broker.subscribe(room);
        await publish(c!, room, 4);
        await vi.waitFor(() => expect(b!.got(room)).toEqual([1, 4]), { timeout: 5_000, interval: 20 });
      });

      it('subscribing twice still delivers each publication once', async () => {
        const [a, b] = await nodes(2);
        const room = ch('room');
        await b!.broker.subscribe(room);
        await b!.broker.subscribe(room);
        await publish(a!, room, 'x');
        await publish(a!, room, 'y');
        await vi.waitFor(() => expect(b!.got(room)).toEqual(['x', 'y']), { timeout: 5_000, interval: 20 });
        // Pause, not a wait: nothing else may arrive.
        await sleep(QUIET_MS);
        expect(b!.got(room)).toEqual(['x', 'y']);
      });

      it('unsubscribing a channel never subscribed is harmless', async () => {
        const [a] = await nodes(1);
        await a!.broker.unsubscribe(ch('never'));
        const room = ch('room');
        await a!.broker.subscribe(room);
        await publish(a!, room, 'ok');
        await vi.waitFor(() => expect(a!.got(room)).toEqual(['ok']), { timeout: 5_000, interval: 20 });
      });
    });

    describe('order and offsets', () => {
      it('numbers concurrent publishes from two nodes 1..N without gaps, delivered in offset order', async () => {
        const [a, b, c] = await nodes(3);
        const room = ch('busy');
        await Promise.all([a, b, c].map((n) => n!.broker.subscribe(room)));

        const N = 200;
        const fire = (n: Node): Array<Promise<PublishResult>> =>
          Array.from({ length: N }, (_, i) => publish(n, room, `${n.id}#${i}`, LONG));
        const [fromA, fromB] = await Promise.all([Promise.all(fire(a!)), Promise.all(fire(b!))]);
        const results = [...fromA, ...fromB];

        const sorted = results.map((r) => r.offset).sort((x, y) => x! - y!);
        expect(sorted).toEqual(Array.from({ length: 2 * N }, (_, i) => i + 1));
        const epoch = results[0]!.epoch;
        expect(typeof epoch).toBe('string');
        expect(new Set(results.map((r) => r.epoch))).toEqual(new Set([epoch]));

        // one node's publishes, fired in a row, keep their order
        for (const own of [fromA, fromB]) {
          const offs = own.map((r) => r.offset!);
          expect(offs).toEqual([...offs].sort((x, y) => x - y));
        }

        // what each publisher was told is what every subscriber receives
        const offsetOf = new Map<unknown, number>();
        fromA.forEach((r, i) => offsetOf.set(`${a!.id}#${i}`, r.offset!));
        fromB.forEach((r, i) => offsetOf.set(`${b!.id}#${i}`, r.offset!));
        for (const n of [a, b, c]) {
          await vi.waitFor(() => expect(n!.pubs.length).toBe(2 * N), { timeout: 5_000, interval: 20 });
          expect(n!.pubs.map((p) => p.offset)).toEqual(sorted);
          for (const p of n!.pubs) {
            expect(p.epoch).toBe(epoch);
            expect(p.offset).toBe(offsetOf.get(p.data));
          }
        }

        const page = await c!.broker.store.history(room, { since: 0, limit: 1000 }, LONG);
        expect(page).toMatchObject({ offset: 2 * N, epoch, earliest: 1 });
        expect(offsets(page)).toEqual(sorted);
        for (const m of page.messages) expect(m.offset).toBe(offsetOf.get(m.data));
      });

      it('without history delivers no offset or epoch and returns {}', async () => {
        const [a, b] = await nodes(2);
        const room = ch('live');
        await b!.broker.subscribe(room);
        expect(await publish(a!, room, 'p1', null)).toEqual({});
        expect(await publish(a!, room, 'p2', { size: 0, ttlMs: 60_000 })).toEqual({});
        await vi.waitFor(() => expect(b!.got(room)).toEqual(['p1', 'p2']), { timeout: 5_000, interval: 20 });
        for (const p of b!.pubs) {
          expect(p.offset).toBeUndefined();
          expect(p.epoch).toBeUndefined();
        }
        const page = await a!.broker.store.history(room, { limit: 10 }, LONG);
        expect(page).toMatchObject({ offset: 0, earliest: 1, messages: [] });
      });
    });

    describe('history', () => {
      it('returns what follows `since`, oldest first, bounded by `limit` and the ring size', async () => {
        const [a, b, c] = await nodes(3);
        const room = ch('hist');
        const policy: HistoryPolicy = { size: 5, ttlMs: 60_000 };
        const published: PublishResult[] = [];
        for (let i = 1; i <= 8; i++) published.push(await publish(a!, room, { i }, policy, i % 2 ? 'u1' : undefined));
        expect(published.map((r) => r.offset)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
        const epoch = published[0]!.epoch!;

        const expected = (i: number): object => ({
          channel: room,
          data: { i },
          offset: i,
          epoch,
          ...(i % 2 ? { from: 'u1' } : {}),
        });

        const all = await b!.broker.store.history(room, { limit: 100 }, policy);
        expect(all).toEqual({ offset: 8, epoch, earliest: 4, messages: [4, 5, 6, 7, 8].map(expected) });

        const after5 = await b!.broker.store.history(room, { since: 5, limit: 100 }, policy);
        expect(after5).toEqual({ offset: 8, epoch, earliest: 4, messages: [6, 7, 8].map(expected) });

        // `since` older than what is kept: from the earliest kept, limited, oldest first
        expect(offsets(await c!.broker.store.history(room, { since: 1, limit: 2 }, policy))).toEqual([4, 5]);
        expect(offsets(await c!.broker.store.history(room, { since: 0, limit: 3 }, policy))).toEqual([4, 5, 6]);
        // no `since`: the newest ones
        expect(offsets(await c!.broker.store.history(room, { limit: 2 }, policy))).toEqual([7, 8]);
        // up to date
        expect(await c!.broker.store.history(room, { since: 8, limit: 10 }, policy)).toEqual({ offset: 8, epoch, earliest: 4, messages: [] });
        // limit 0: the position only
        expect(await a!.broker.store.history(room, { limit: 0 }, policy)).toEqual({ offset: 8, epoch, earliest: 4, messages: [] });
        expect(await a!.broker.store.history(room, { since: 2, limit: 0 }, policy)).toEqual({ offset: 8, epoch, earliest: 4, messages: [] });

        // the ring moves on
        for (let i = 9; i <= 11; i++) await publish(b!, room, { i }, policy, i % 2 ? 'u1' : undefined);
        const later = await c!.broker.store.history(room, { since: 0, limit: 100 }, policy);
        expect(later).toEqual({ offset: 11, epoch, earliest: 7, messages: [7, 8, 9, 10, 11].map(expected) });
      });

      it('numbers a channel at its first publish, not at a read, and keeps that epoch across calls and nodes', async () => {
        const [a, b] = await nodes(2);
        const fresh = ch('fresh');
        // A read of a channel never published to creates nothing: an empty page without epoch, on every node.
        const empty = { offset: 0, epoch: '', earliest: 1, messages: [] };
        expect(await a!.broker.store.history(fresh, { limit: 10 }, LONG)).toEqual(empty);
        expect(await b!.broker.store.history(fresh, { since: 0, limit: 0 }, LONG)).toEqual(empty);

        const first = await publish(b!, fresh, 'one', LONG);
        expect(first).toEqual({ offset: 1, epoch: expect.any(String) });
        expect(first.epoch!.length).toBeGreaterThan(0);
        expect((await a!.broker.store.history(fresh, { limit: 0 }, LONG)).epoch).toBe(first.epoch);
        expect(await publish(a!, fresh, 'two', LONG)).toEqual({ offset: 2, epoch: first.epoch });
        const page = await b!.broker.store.history(fresh, { since: 0, limit: 10 }, LONG);
        expect(page.epoch).toBe(first.epoch);
        expect(page.messages.map((m) => m.data)).toEqual(['one', 'two']);

        // channels are independent
        const otherPage = await a!.broker.store.history(ch('other'), { limit: 10 }, LONG);
        expect(otherPage.offset).toBe(0);
        expect(await publish(a!, ch('other'), 'x', LONG)).toMatchObject({ offset: 1 });
      });

      it('drops messages older than the TTL but keeps the top offset and epoch', async () => {
        const [a, b] = await nodes(2);
        const room = ch('ttl');
        const policy: HistoryPolicy = { size: 10, ttlMs: 800 };
        const r1 = await publish(a!, room, 'm1', policy);
        await publish(a!, room, 'm2', policy);
        const epoch = r1.epoch!;
        expect(offsets(await b!.broker.store.history(room, { limit: 10 }, policy))).toEqual([1, 2]);

        // Pause, not a wait: time passes so that m1 and m2 expire before m3.
        await sleep(400);
        await publish(b!, room, 'm3', policy);
        // m1 and m2 expire about 400 ms before m3: watch for the step in between
        const partial = await vi.waitFor(async () => {
          const page = await b!.broker.store.history(room, { since: 0, limit: 10 }, policy);
          expect(page.messages.every((m) => m.offset! > 2)).toBe(true);
          return page;
        }, { timeout: 5_000, interval: 20 });
        expect(partial).toEqual({ offset: 3, epoch, earliest: 3, messages: [{ channel: room, data: 'm3', offset: 3, epoch }] });

        const empty = await vi.waitFor(async () => {
          const page = await a!.broker.store.history(room, { since: 0, limit: 10 }, policy);
          expect(page.messages).toEqual([]);
          return page;
        }, { timeout: 5_000, interval: 20 });
        expect(empty).toEqual({ offset: 3, epoch, earliest: 4, messages: [] });

        // numbering continues under the same epoch
        expect(await publish(a!, room, 'm4', policy)).toEqual({ offset: 4, epoch });
        expect(await b!.broker.store.history(room, { since: 3, limit: 10 }, policy)).toEqual({
          offset: 4,
          epoch,
          earliest: 4,
          messages: [{ channel: room, data: 'm4', offset: 4, epoch }],
        });
      });
    });

    describe('presence', () => {
      it('shows entries added on any node and forgets removed ones', async () => {
        const [a, b, c] = await nodes(3);
        const room = ch('room');
        const lobby = ch('lobby');
        const e = (user: string, session: string, n: Node): PresenceEntry => ({ user, session, node: n.id });

        expect(await c!.broker.store.presence(room)).toEqual([]);
        await a!.broker.store.presenceAdd([
          { channel: room, entry: e('u1', 's1', a!) },
          { channel: room, entry: e('u2', 's2', a!) },
          { channel: lobby, entry: e('u1', 's1', a!) },
        ]);
        await b!.broker.store.presenceAdd([{ channel: room, entry: e('u3', 's3', b!) }]);

        expect((await c!.broker.store.presence(room)).sort(bySession)).toEqual([e('u1', 's1', a!), e('u2', 's2', a!), e('u3', 's3', b!)]);
        expect(await b!.broker.store.presence(lobby)).toEqual([e('u1', 's1', a!)]);

        // re-adding a session replaces its entry rather than duplicating it
        await a!.broker.store.presenceAdd([{ channel: room, entry: e('u2', 's2', a!) }]);
        expect(await c!.broker.store.presence(room)).toHaveLength(3);

        await a!.broker.store.presenceRemove([
          { channel: room, entry: e('u1', 's1', a!) },
          { channel: room, entry: e('u9', 'never-there', a!) },
          { channel: ch('nowhere'), entry: e('u1', 's1', a!) },
        ]);
        expect((await b!.broker.store.presence(room)).sort(bySession)).toEqual([e('u2', 's2', a!), e('u3', 's3', b!)]);
        // only that channel's entry went
        expect(await c!.broker.store.presence(lobby)).toEqual([e('u1', 's1', a!)]);

        await c!.broker.store.presenceRemove([{ channel: lobby, entry: e('u1', 's1', a!) }]);
        expect(await a!.broker.store.presence(lobby)).toEqual([]);
      });

      it("keeps entries until removed, and drops every entry of one node at once, that node's only", async () => {
        const [a, b, c] = await nodes(3);
        const room = ch('room');
        const lobby = ch('lobby');
        const fromA: PresenceEntry[] = range(1, 30).map((i) => ({ user: `u${i}`, session: `a${i}`, node: a!.id }));
        const fromB: PresenceEntry = { user: 'u1', session: 'b1', node: b!.id };
        await a!.broker.store.presenceAdd(fromA.map((entry, i) => ({ channel: i % 2 ? room : lobby, entry })));
        await b!.broker.store.presenceAdd([{ channel: room, entry: fromB }, { channel: lobby, entry: fromB }]);
        if (withNodes) await a!.broker.registry!.register([room, lobby]);
        if (withNodes) await b!.broker.registry!.register([room]);
        expect((await c!.broker.store.nodesWithEntries()).sort()).toEqual([a!.id, b!.id].sort());
        // Pause, not a wait: entries do not expire on a timer (nothing refreshes them here).
        await sleep(QUIET_MS);
        expect(await c!.broker.store.presence(room)).toHaveLength(16);

        // any node may drop a node that died, more than once
        await c!.broker.store.dropNode(a!.id);
        await b!.broker.store.dropNode(a!.id);
        expect(await c!.broker.store.presence(room)).toEqual([fromB]);
        expect(await c!.broker.store.presence(lobby)).toEqual([fromB]);
        expect(await c!.broker.store.nodesWithEntries()).toEqual([b!.id]);
        if (withNodes) expect(await c!.broker.registry!.registered(room)).toEqual([b!.id]);
        if (withNodes) expect(await c!.broker.registry!.registered(lobby)).toEqual([]);
        if (withBoth) {
          // a publication routed to the registered nodes reaches b only
          await send(c!, room, 'to-registered', toNodes([], true));
          await send(c!, room, 'end', ALL);
          for (const n of [a, b]) await vi.waitFor(() => expect(n!.got(room).at(-1)).toBe('end'), { timeout: 5_000, interval: 20 });
          expect(a!.got(room)).toEqual(['end']);
          expect(b!.got(room)).toEqual(['to-registered', 'end']);
        }

        // what the node adds afterwards (it was not dead after all, or starts again under its id) stays
        await a!.broker.store.presenceAdd([{ channel: room, entry: fromA[0]! }]);
        if (withNodes) await a!.broker.registry!.register([lobby]);
        expect((await c!.broker.store.presence(room)).sort(bySession)).toEqual([fromA[0], fromB]);
        if (withNodes) expect(await c!.broker.registry!.registered(lobby)).toEqual([a!.id]);
        await c!.broker.store.dropNode(`n-${tag}-nobody`);
        expect((await c!.broker.store.nodesWithEntries()).sort()).toEqual([a!.id, b!.id].sort());
      });
    });

    describe('control', () => {
      it('sends to every started node, the sender included, or to one node', async () => {
        const [a, b, c] = await nodes(3);
        await a!.broker.sendControl(null, 'to-all');
        for (const n of [a, b, c]) await vi.waitFor(() => expect(n!.controls).toEqual(['to-all']), { timeout: 5_000, interval: 20 });

        await a!.broker.sendControl(b!.id, 'to-b');
        await c!.broker.sendControl(a!.id, 'c-to-a');
        await b!.broker.sendControl(b!.id, 'b-to-self');
        await a!.broker.sendControl(`n-${tag}-nobody`, 'to-nobody');
        // 'to-b' and 'b-to-self' come from two senders: only each sender's own order is promised.
        const bGot = (): string[] => [b!.controls[0]!, ...b!.controls.slice(1).sort()];
        await vi.waitFor(() => expect(bGot()).toEqual(['to-all', 'b-to-self', 'to-b']), { timeout: 5_000, interval: 20 });
        await vi.waitFor(() => expect(a!.controls).toEqual(['to-all', 'c-to-a']), { timeout: 5_000, interval: 20 });
        // Pause, not a wait: nothing else may arrive.
        await sleep(QUIET_MS);
        expect(a!.controls).toEqual(['to-all', 'c-to-a']);
        expect(b!.controls).toHaveLength(3);
        expect(bGot()).toEqual(['to-all', 'b-to-self', 'to-b']);
        expect(c!.controls).toEqual(['to-all']);
      });

      it('keeps the order of one sender and carries any text', async () => {
        const [a, b] = await nodes(2);
        const payloads = Array.from({ length: 50 }, (_, i) => JSON.stringify({ i, s: 'ünïcode\n"quoted"' }));
        await Promise.all(payloads.map((p) => a!.broker.sendControl(b!.id, p)));
        await vi.waitFor(() => expect(b!.controls).toEqual(payloads), { timeout: 5_000, interval: 20 });
      });

      it('does not mix up control messages and publications', async () => {
        const [a, b] = await nodes(2);
        const room = ch('room');
        await b!.broker.subscribe(room);
        await a!.broker.sendControl(b!.id, 'ctl');
        await publish(a!, room, 'pub');
        await vi.waitFor(() => expect(b!.got(room)).toEqual(['pub']), { timeout: 5_000, interval: 20 });
        await vi.waitFor(() => expect(b!.controls).toEqual(['ctl']), { timeout: 5_000, interval: 20 });
        // Pause, not a wait: nothing else may arrive.
        await sleep(QUIET_MS);
        expect(b!.pubs).toHaveLength(1);
        expect(b!.controls).toEqual(['ctl']);
      });
    });

    describe('idempotency', () => {
      const WINDOW = 60_000;
      const once = (key: string, windowMs = WINDOW) => ({ key, windowMs });
      const publishOnce = (n: Node, channel: string, data: unknown, key: string, history: HistoryPolicy | null = LONG, route?: Route, windowMs = WINDOW) =>
        n.broker.publish({ channel, data, ts: Date.now() }, history, route, once(key, windowMs));

      it('publishes once per key and channel, and returns the first result to every repeat', async () => {
        const [a, b] = await nodes(2);
        const room = ch('once');
        const other = ch('once-other');
        await b!.broker.subscribe(room);
        await b!.broker.subscribe(other);
        const first = await publishOnce(a!, room, 'x', 'k1');
        expect(first).toEqual({ offset: 1, epoch: expect.any(String) });
        expect(first.duplicate).toBeUndefined();
        // repeated from another node too
        expect(await publishOnce(b!, room, 'x-again', 'k1')).toEqual({ ...first, duplicate: true });
        expect(await publishOnce(a!, room, 'x-again', 'k1')).toEqual({ ...first, duplicate: true });
        // another key, or the same key on another channel, publishes
        expect(await publishOnce(a!, room, 'y', 'k2')).toEqual({ offset: 2, epoch: first.epoch });
        expect((await publishOnce(a!, other, 'z', 'k1')).offset).toBe(1);
        await publish(a!, room, 'barrier', LONG);
        await vi.waitFor(() => expect(b!.got(room)).toEqual(['x', 'y', 'barrier']), { timeout: 5_000, interval: 20 });
        await vi.waitFor(() => expect(b!.got(other)).toEqual(['z']), { timeout: 5_000, interval: 20 });
        const page = await a!.broker.store.history(room, { since: 0, limit: 10 }, LONG);
        expect(page.messages.map((m) => m.data)).toEqual(['x', 'y', 'barrier']);
      });

      it('without history: publishes once per key', async () => {
        const [a, b] = await nodes(2);
        const room = ch('once-plain');
        await b!.broker.subscribe(room);
        expect(await publishOnce(a!, room, 'p', 'k', null)).toEqual({});
        expect(await publishOnce(b!, room, 'p-again', 'k', null)).toEqual({ duplicate: true });
        await publishOnce(a!, room, 'q', 'k2', null);
        await vi.waitFor(() => expect(b!.got(room)).toEqual(['p', 'q']), { timeout: 5_000, interval: 20 });
        // Pause, not a wait: nothing else may arrive.
        await sleep(QUIET_MS);
        expect(b!.got(room)).toEqual(['p', 'q']);
      });

      it('concurrent publishes with one key from several nodes: one publication, one result', async () => {
        const [a, b, c] = await nodes(3);
        const room = ch('once-race');
        await c!.broker.subscribe(room);
        const results = await Promise.all([a!, b!, c!, a!, b!, c!].map((n, i) => publishOnce(n, room, `try-${i}`, 'race')));
        expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
        for (const r of results) expect({ offset: r.offset, epoch: r.epoch }).toEqual({ offset: 1, epoch: results[0]!.epoch });
        await publish(a!, room, 'barrier', LONG);
        await vi.waitFor(() => expect(c!.got(room)).toHaveLength(2), { timeout: 5_000, interval: 20 });
        expect(c!.got(room)[1]).toBe('barrier');
      });

      it('a key may publish again once its window has passed', async () => {
        const [a] = await nodes(1);
        const room = ch('once-window');
        expect((await publishOnce(a!, room, 1, 'w', LONG, undefined, 300)).offset).toBe(1);
        expect((await publishOnce(a!, room, 1, 'w', LONG, undefined, 300)).duplicate).toBe(true);
        // Pause, not a wait: the key's 300 ms window passes.
        await sleep(1_500);
        const again = await publishOnce(a!, room, 2, 'w', LONG, undefined, 300);
        expect(again).toEqual({ offset: 2, epoch: expect.any(String) });
      });

      withAll?.('along `all`: once per key', async () => {
        const [a, b] = await nodes(2);
        const room = ch('once-all');
        expect((await publishOnce(a!, room, 'u', 'k', LONG, ALL)).offset).toBe(1);
        expect(await publishOnce(b!, room, 'u', 'k', LONG, ALL)).toMatchObject({ offset: 1, duplicate: true });
        await send(a!, room, 'barrier', ALL);
        await vi.waitFor(() => expect(b!.got(room)).toEqual(['u', 'barrier']), { timeout: 5_000, interval: 20 });
      });

      withNodes?.('along `nodes`: once per key', async () => {
        const [a, b] = await nodes(2);
        const room = ch('once-nodes');
        expect((await publishOnce(a!, room, 'v', 'k', LONG, toNodes([b!.id]))).offset).toBe(1);
        expect(await publishOnce(a!, room, 'v', 'k', LONG, toNodes([b!.id]))).toMatchObject({ offset: 1, duplicate: true });
        expect(await publishOnce(a!, room, 'v', 'k', null, toNodes([b!.id]))).toMatchObject({ duplicate: true });
        await send(a!, room, 'barrier', toNodes([b!.id]));
        await vi.waitFor(() => expect(b!.got(room)).toEqual(['v', 'barrier']), { timeout: 5_000, interval: 20 });
      });
    });

    describe('acknowledged positions', () => {
      it('are kept per channel and reader, seen from every node, and only move forward within an epoch', async () => {
        const [a, b] = await nodes(2);
        const inbox = ch('acks', 'user');
        expect(await a!.broker.store.loadAck(inbox, '')).toBeNull();
        await a!.broker.store.saveAck(inbox, '', { offset: 5, epoch: 'e1' }, 60_000);
        expect(await b!.broker.store.loadAck(inbox, '')).toEqual({ offset: 5, epoch: 'e1' });
        expect(await b!.broker.store.loadAck(inbox, 'phone')).toBeNull();
        expect(await b!.broker.store.loadAck(ch('acks-other', 'user'), '')).toBeNull();
        await b!.broker.store.saveAck(inbox, '', { offset: 3, epoch: 'e1' }, 60_000);
        expect(await a!.broker.store.loadAck(inbox, '')).toEqual({ offset: 5, epoch: 'e1' });
        await b!.broker.store.saveAck(inbox, '', { offset: 9, epoch: 'e1' }, 60_000);
        expect(await a!.broker.store.loadAck(inbox, '')).toEqual({ offset: 9, epoch: 'e1' });
        // history restarted: the new epoch's position replaces the old one
        await a!.broker.store.saveAck(inbox, '', { offset: 2, epoch: 'e2' }, 60_000);
        expect(await b!.broker.store.loadAck(inbox, '')).toEqual({ offset: 2, epoch: 'e2' });
        await a!.broker.store.saveAck(inbox, 'phone', { offset: 1, epoch: 'e2' }, 60_000);
        expect(await b!.broker.store.loadAck(inbox, 'phone')).toEqual({ offset: 1, epoch: 'e2' });
        expect(await b!.broker.store.loadAck(inbox, '')).toEqual({ offset: 2, epoch: 'e2' });
      });

      it('are read with the history after them by resume, from the start when none is kept', async () => {
        const [a, b] = await nodes(2);
        const inbox = ch('resume', 'user');
        const never = await b!.broker.store.resume(ch('resume-never', 'user'), 'phone', LONG);
        expect(never).toMatchObject({ ack: null, page: { offset: 0, epoch: '', messages: [] } });
        for (const data of ['one', 'two', 'three']) await publish(a!, inbox, data, LONG);
        const fresh = await b!.broker.store.resume(inbox, 'phone', LONG);
        expect(fresh.ack).toBeNull();
        expect(fresh.page.messages.map((m) => m.data)).toEqual(['one', 'two', 'three']);
        expect(fresh.page).toMatchObject({ offset: 3, earliest: 1 });
        const epoch = fresh.page.epoch;
        await a!.broker.store.saveAck(inbox, 'phone', { offset: 1, epoch }, 60_000);
        const after = await b!.broker.store.resume(inbox, 'phone', LONG);
        expect(after.ack).toEqual({ offset: 1, epoch });
        expect(after.page.messages.map((m) => [m.offset, m.data])).toEqual([[2, 'two'], [3, 'three']]);
        // another reader's position is its own
        expect((await b!.broker.store.resume(inbox, 'laptop', LONG)).ack).toBeNull();
      });

      it('expire after their TTL unless saved again', async () => {
        const [a] = await nodes(1);
        const inbox = ch('acks-ttl', 'user');
        await a!.broker.store.saveAck(inbox, 'gone', { offset: 1, epoch: 'e' }, 400);
        await a!.broker.store.saveAck(inbox, 'kept', { offset: 1, epoch: 'e' }, 400);
        // Pause, not a wait: part of the 400 ms TTL passes.
        await sleep(250);
        // a save that does not move the position still refreshes it
        await a!.broker.store.saveAck(inbox, 'kept', { offset: 1, epoch: 'e' }, 400);
        // Pause, not a wait: part of the 400 ms TTL passes.
        await sleep(250);
        expect(await a!.broker.store.loadAck(inbox, 'gone')).toBeNull();
        expect(await a!.broker.store.loadAck(inbox, 'kept')).toEqual({ offset: 1, epoch: 'e' });
      });
    });

    if (withReadSubscribing) describe('a history read in the round trip of a subscription', () => {
      const reader = (n: Node, channel: string): { read: () => Promise<HistoryPage>; count: () => number } => {
        let reads = 0;
        return {
          read: () => {
            reads++;
            return n.broker.store.history(channel, { since: 0, limit: 100 }, LONG);
          },
          count: () => reads,
        };
      };

      withReadSubscribing('stands once the subscription proves it was in place before the read, and leaves the other nodes nothing', async () => {
        const [a, b] = await nodes(2);
        const rooms = range(1, 20).map((i) => ch(`proven-${i}`));
        const reads: number[] = [];
        for (const room of rooms) {
          await b!.broker.subscribe(room);
          await publish(b!, room, 'before', LONG);
          const { read, count } = reader(a!, room);
          const page = await a!.broker.readSubscribing!(room, a!.broker.subscribe(room), read);
          expect(page.messages.map((m) => m.data)).toEqual(['before']);
          reads.push(count());
        }
        // One read each, proven by the marker; a second only when the marker came late (a busy machine), never more.
        expect(reads.every((n) => n === 1 || n === 2)).toBe(true);
        expect(reads.filter((n) => n === 1).length).toBeGreaterThanOrEqual(15);
        // the subscriptions are live, and the markers reached no node as publications
        for (const room of rooms) await publish(b!, room, 'after', LONG);
        for (const room of rooms) {
          for (const n of [a!, b!]) await vi.waitFor(() => expect(n.got(room)).toContain('after'), { timeout: WAIT_MS, interval: 20 });
          expect(a!.got(room)).toEqual(['after']);
          expect(b!.got(room)).toEqual(['before', 'after']);
        }
      });

      withReadSubscribing('reads again when the subscription came after the read, so that what was published between is not lost', async () => {
        const [a, b] = await nodes(2);
        const room = ch('late');
        const { read, count } = reader(a!, room);
        // Not subscribed when the first read runs: a publication, then the subscription.
        const subscribed = (async () => {
          await sleep(50);
          await publish(b!, room, 'between', LONG);
          await a!.broker.subscribe(room);
        })();
        const page = await a!.broker.readSubscribing!(room, subscribed, read);
        expect(count()).toBe(2);
        expect(page.messages.map((m) => m.data)).toEqual(['between']);
      });

      withReadSubscribing('fails as the subscription fails', async () => {
        const [a] = await nodes(1);
        const room = ch('failing');
        const { read } = reader(a!, room);
        await expect(a!.broker.readSubscribing!(room, Promise.reject(new Error('no subscription')), read)).rejects.toThrow('no subscription');
      });
    });

    // A broker that carries only `subscribers` has no routing test (vitest refuses an empty describe).
    if (withAll || withNodes) describe('routing', () => {
      withAll?.('`all` reaches every started node, subscribed or not, once each, in offset order', async () => {
        const [a, b, c] = await nodes(3);
        const room = ch('bcast');
        // a subscription does not add a second delivery of a broadcast
        await b!.broker.subscribe(room);

        const N = 30;
        const publishers = [a!, b!, c!];
        const results = await Promise.all(range(1, N).map((i) => send(publishers[i % 3]!, room, i, ALL)));
        const sorted = results.map((r) => r.offset!).sort((x, y) => x - y);
        expect(sorted).toEqual(range(1, N));
        const epoch = results[0]!.epoch;
        const offsetOf = new Map(results.map((r, i) => [i + 1, r.offset]));
        for (const n of [a, b, c]) {
          await vi.waitFor(() => expect(n!.got(room)).toHaveLength(N), { timeout: 5_000, interval: 20 });
          expect(offsetsOf(n!, room)).toEqual(range(1, N));
          for (const p of n!.pubs) {
            expect(p).toMatchObject({ channel: room, epoch });
            expect(p.offset).toBe(offsetOf.get(p.data as number));
            expect(typeof p.ts).toBe('number');
          }
        }

        // without history: no offset, carried all the same, `from` included,
        // in the order of their publisher (there is no order across publishers without offsets)
        expect(await b!.broker.publish({ channel: room, data: 'live-1', ts: Date.now(), from: 'u1' }, null, ALL)).toEqual({});
        expect(await send(b!, room, 'live-2', ALL, { size: 0, ttlMs: 60_000 })).toEqual({});
        for (const n of [a, b, c]) {
          await vi.waitFor(() => expect(n!.got(room).slice(N)).toEqual(['live-1', 'live-2']), { timeout: 5_000, interval: 20 });
          const [p1, p2] = n!.pubs.slice(N);
          expect(p1).toMatchObject({ channel: room, data: 'live-1', from: 'u1' });
          expect(p1!.offset).toBeUndefined();
          expect(p2!.epoch).toBeUndefined();
        }
        expect((await a!.broker.store.history(room, { limit: 0 }, LONG)).offset).toBe(N);

        // a node started later receives what follows; a closed one nothing more
        const d = await node('d');
        await c!.broker.close();
        await send(a!, room, 'late', ALL);
        for (const n of [a, b, d]) await vi.waitFor(() => expect(n!.got(room).at(-1)).toBe('late'), { timeout: 5_000, interval: 20 });
        // Pause, not a wait: nothing else may arrive.
        await sleep(QUIET_MS);
        expect(d.got(room)).toEqual(['late']);
        expect(offsetsOf(d, room)).toEqual([N + 1]);
        expect(c!.got(room)).toHaveLength(N + 2);
        for (const n of [a, b]) expect(n!.got(room)).toHaveLength(N + 3);
      });

      withNodes?.('`nodes` reaches exactly the listed nodes, each once; unknown node ids are harmless', async () => {
        const [a, b, c] = await nodes(3);
        const d = await node('d');
        const room = ch('inbox');
        await c!.broker.registry!.register([room]);
        // a subscriber that is not listed: a `nodes` route is not interest routing
        await d.broker.subscribe(room);

        await send(a!, room, 'to-b', toNodes([b!.id, b!.id, `n-${tag}-nobody`]));
        await send(a!, room, 'to-b-c', toNodes([b!.id, c!.id], true));
        await send(b!, room, 'to-a-b', toNodes([a!.id, b!.id]), null);
        await send(c!, room, 'nowhere', toNodes([]));
        // the last publication reaches everyone: once it is in, all earlier ones are (offset order)
        await send(d, room, 'end', ALL);
        for (const n of [a, b, c, d]) await vi.waitFor(() => expect(n!.got(room).at(-1)).toBe('end'), { timeout: 5_000, interval: 20 });
        // Pause, not a wait: nothing else may arrive.
        await sleep(QUIET_MS);
        expect(a!.got(room)).toEqual(['to-a-b', 'end']);
        expect(b!.got(room)).toEqual(['to-b', 'to-b-c', 'to-a-b', 'end']);
        expect(c!.got(room)).toEqual(['to-b-c', 'end']);
        expect(d.got(room)).toEqual(['end']);
        expect(offsetsOf(b!, room)).toEqual([1, 2, undefined, 4]);
        expect(c!.pubs).toHaveLength(2);
      });

      withNodes?.('`nodes` with `registered` reaches the registered nodes, until they unregister', async () => {
        const [a, b, c] = await nodes(3);
        const room = ch('reg');
        const other = ch('reg-other');
        expect(await a!.broker.registry!.registered(room)).toEqual([]);

        await b!.broker.registry!.register([room, other]);
        await c!.broker.registry!.register([room]);
        await c!.broker.registry!.register([room]);
        expect((await a!.broker.registry!.registered(room)).sort()).toEqual([b!.id, c!.id].sort());
        expect(await a!.broker.registry!.registered(other)).toEqual([b!.id]);

        await send(a!, room, 'r1', toNodes([], true));
        await send(a!, room, 'r2', toNodes([], false));
        await b!.broker.registry!.unregister([room, ch('never')]);
        expect(await c!.broker.registry!.registered(room)).toEqual([c!.id]);
        // only that channel's entry went
        expect(await c!.broker.registry!.registered(other)).toEqual([b!.id]);
        await send(a!, room, 'r3', toNodes([], true), null);
        await send(b!, room, 'r4', toNodes([a!.id], true));

        await send(a!, room, 'end', ALL);
        for (const n of [a, b, c]) await vi.waitFor(() => expect(n!.got(room).at(-1)).toBe('end'), { timeout: 5_000, interval: 20 });
        // Pause, not a wait: nothing else may arrive.
        await sleep(QUIET_MS);
        expect(a!.got(room)).toEqual(['r4', 'end']);
        expect(b!.got(room)).toEqual(['r1', 'end']);
        expect(c!.got(room)).toEqual(['r1', 'r3', 'r4', 'end']);

        await c!.broker.registry!.unregister([room]);
        expect(await a!.broker.registry!.registered(room)).toEqual([]);
      });

      withNodes?.('a node that registers and then reads the position misses nothing published concurrently', async () => {
        const [a, b] = await nodes(2);
        const joiners = await Promise.all(['c', 'd', 'e', 'f'].map((l) => node(l)));
        // every channel and every joiner is one more chance to catch a registry read that is not atomic with the numbering
        const rooms = range(1, 8).map((i) => ch(`race-${i}`));
        const MAX = 8_000;
        const deadline = Date.now() + 10_000;
        const results = new Map<string, PublishResult[]>(rooms.map((r) => [r, []]));
        let fired = 0;
        let stop = false;
        const publisher = async (n: Node): Promise<void> => {
          while (!stop && fired < MAX && Date.now() < deadline) {
            await Promise.all(
              rooms.map(async (room) => {
                const result = await send(n, room, fired++, toNodes([], true));
                results.get(room)!.push(result);
              }),
            );
            // let the registering node in between bursts, however fast the broker answers
            await new Promise((r) => setImmediate(r));
          }
        };
        const runs = [publisher(a!), publisher(b!)];
        try {
          const starts = new Map<Node, number[]>();
          for (const [i, n] of joiners.entries()) {
            await vi.waitFor(() => expect(fired).toBeGreaterThan(100 + 300 * i), { timeout: 5_000, interval: 20 });
            await n.broker.registry!.register(rooms);
            starts.set(n, await Promise.all(rooms.map(async (room) => (await n.broker.store.history(room, { limit: 0 }, LONG)).offset)));
          }
          const firedThen = fired;
          await vi.waitFor(() => expect(fired).toBeGreaterThan(firedThen + 800), { timeout: 5_000, interval: 20 });
          stop = true;
          await Promise.all(runs);

          for (const [i, room] of rooms.entries()) {
            const offs = results.get(room)!.map((r) => r.offset!);
            const top = Math.max(...offs);
            expect(offs.sort((x, y) => x - y)).toEqual(range(1, top));
            for (const n of joiners) {
              const start = starts.get(n)![i]!;
              expect(top).toBeGreaterThan(start + 20);
              await vi.waitFor(() => expect(offsetsOf(n, room).at(-1)).toBe(top), { timeout: 5_000, interval: 20 });
              const got = offsetsOf(n, room) as number[];
              // once it receives: each offset once, in order, no gap; and every offset after its start
              for (let k = 1; k < got.length; k++) expect(got[k]).toBe(got[k - 1]! + 1);
              expect(got.filter((o) => o > start)).toEqual(range(start + 1, top));
            }
          }
          // nodes that never registered received nothing
          expect(a!.pubs).toEqual([]);
          expect(b!.pubs).toEqual([]);
        } finally {
          stop = true;
          await Promise.allSettled(runs);
        }
      });

      withBoth?.('many publishers on one channel: every receiver gets 1..N without gaps, in order', async () => {
        const [a, b, c] = await nodes(3);
        const viaAll = ch('many-all');
        const viaNodes = ch('many-nodes');
        await c!.broker.registry!.register([viaNodes]);
        const N = 100;
        const publishers = [a!, b!, c!];
        await Promise.all(
          publishers.flatMap((n) =>
            range(1, N).flatMap((i) => [
              send(n, viaAll, `${n.id}#${i}`, ALL),
              send(n, viaNodes, `${n.id}#${i}`, toNodes([a!.id, b!.id], true)),
            ]),
          ),
        );
        for (const n of publishers) {
          for (const channel of [viaAll, viaNodes]) {
            await vi.waitFor(() => expect(n.got(channel)).toHaveLength(3 * N), { timeout: 5_000, interval: 20 });
            expect(offsetsOf(n, channel)).toEqual(range(1, 3 * N));
          }
        }
      });
    });
  });
}
