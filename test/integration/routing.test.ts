/**
 * The routing suite: every routing strategy (`--routing`) over a real
 * redis-server, with three real node processes, must give the same
 * guarantees: each message reaches every connection it is for exactly
 * once and in order, presence is cluster-wide, a client that reconnects
 * elsewhere while messages are being published recovers all of them, and
 * when a node is killed with SIGKILL its clients move to the others and
 * lose nothing. Hash-ring routing runs twice: accepting any user (behind a
 * plain load balancer) and redirecting users to their owner (4102).
 *
 * Clients are raw protocol clients, so that the accounting sees exactly
 * what the server sent: per connection, the recovered messages (in
 * `welcome` or the subscribe reply) and then the live ones.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Publication, ServerFrame } from '../../src/protocol/index.js';
import { createBroker } from '../../src/brokers/index.js';
import { RawClient } from '../helpers/raw-client.js';
import { startNodeProcess, writeConfig, type NodeProcess } from '../helpers/node-process.js';
import { startNats, startNatsCluster } from '../helpers/nats-server.js';
import { startRedis } from '../helpers/redis-server.js';
import { sleep } from '../helpers/wait.js';

const KEY = 'routing-key';
const USERS = 24;
const ROOMS = 4;

interface Variant {
  name: string;
  args: string[];
  redirect: boolean;
}

const VARIANTS: Variant[] = [
  { name: 'interest', args: ['--routing', 'interest'], redirect: false },
  { name: 'broadcast', args: ['--routing', 'broadcast'], redirect: false },
  { name: 'registry', args: ['--routing', 'registry'], redirect: false },
  { name: 'hashring', args: ['--routing', 'hashring'], redirect: false },
  { name: 'hashring with redirects', args: ['--routing', 'hashring', '--hashring-redirect'], redirect: true },
];

/** A broker the nodes share, started for one variant. */
interface Backend {
  url: string;
  stop(): Promise<void>;
}

interface BackendKind {
  name: string;
  start(): Promise<Backend>;
  /** The variants this broker runs (the node refuses the others at start). */
  variants: readonly string[];
}

const BACKENDS: BackendKind[] = [
  {
    name: 'Redis',
    variants: VARIANTS.map((v) => v.name),
    start: async () => {
      const redis = await startRedis();
      return { url: redis.url, stop: () => redis.stop() };
    },
  },
  {
    // A nats-server of the test's own, with JetStream: history without Redis. NATS refuses registry and hash-ring routing.
    name: 'NATS',
    variants: ['interest', 'broadcast'],
    start: async () => {
      const nats = await startNats();
      return { url: nats.url, stop: () => nats.stop() };
    },
  },
  {
    // Three nats-servers in a cluster with JetStream; the nodes are given the seed list.
    name: 'a 3-server NATS cluster',
    variants: ['interest', 'broadcast'],
    start: async () => {
      const cluster = await startNatsCluster(3);
      await cluster.settled();
      return { url: cluster.url, stop: () => cluster.stop() };
    },
  },
  {
    // The running RabbitMQ, with names of this run's own; history and presence in a redis-server of the test's own.
    name: 'RabbitMQ',
    variants: VARIANTS.map((v) => v.name),
    start: async () => {
      const redis = await startRedis();
      const prefix = `rt${randomBytes(4).toString('hex')}`;
      return { url: `amqp://guest:guest@127.0.0.1:5672/?store=${redis.url}&prefix=${prefix}`, stop: () => redis.stop() };
    },
  },
];

const CASES = BACKENDS.flatMap((backend) =>
  VARIANTS.filter((v) => backend.variants.includes(v.name)).map((variant) => ({ ...variant, backend, title: `${variant.name} over ${backend.name}` })),
);

type Position = { offset: number; epoch: string };

/** One user's connections over time and every message they received, in order, per channel. */
class Tracked {
  conn: RawClient | undefined;
  node = '';
  /** Connections already closed, oldest first. */
  private readonly past: RawClient[] = [];
  /** The node ids of 4102 redirects followed. */
  readonly redirects: string[] = [];

  constructor(
    readonly user: string,
    readonly room: string | undefined,
  ) {}

  get channel(): string {
    return `user:${this.user}`;
  }

  /** Offsets received per channel, over every connection, in arrival order. */
  received(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    const add = (m: Publication): void => {
      const list = out.get(m.channel) ?? [];
      list.push(m.offset ?? -1);
      out.set(m.channel, list);
    };
    for (const c of [...this.past, ...(this.conn ? [this.conn] : [])]) {
      for (const f of c.frames) {
        if (f.type === 'welcome') f.messages.forEach(add);
        else if (f.type === 'reply' && 'result' in f && typeof f.result === 'object' && f.result !== null && 'messages' in f.result) {
          (f.result as { messages: Publication[] }).messages.forEach(add);
        } else if (f.type === 'message') add(f);
      }
    }
    return out;
  }

  /** Where to recover a channel from: the newest offset received on it. */
  position(channel: string, epoch: string): Position {
    const offsets = this.received().get(channel) ?? [];
    return { offset: offsets.at(-1) ?? 0, epoch };
  }

  retire(): void {
    if (this.conn) this.past.push(this.conn);
    this.conn = undefined;
  }
}

function firstOf(c: RawClient): Promise<ServerFrame> {
  return c.next((f) => f.type === 'welcome' || f.type === 'disconnect', 10_000);
}

/**
 * Connect `t` through `node` (following 4102 redirects to the owner), with
 * recovery of its personal channel from `since`; then (re)subscribe its room.
 * A redirect to a node that cannot be reached (it just died) is retried.
 */
async function join(t: Tracked, node: NodeProcess, since?: Position, roomSince?: Position): Promise<void> {
  const query = new URLSearchParams({ user: t.user });
  if (since) {
    query.set('since', String(since.offset));
    query.set('epoch', since.epoch);
  }
  const deadline = Date.now() + 20_000;
  let url = node.ws(query.toString());
  for (let hop = 0; ; hop++) {
    if (Date.now() > deadline) throw new Error(`${t.user} could not connect`);
    let c: RawClient;
    try {
      c = await RawClient.open(url);
    } catch {
      await sleep(300);
      url = node.ws(query.toString());
      continue;
    }
    const first = await firstOf(c);
    if (first.type === 'disconnect') {
      expect(first.code).toBe(4102);
      expect(first.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/ws$/);
      await c.closed;
      // The server says where the user belongs: keep the query, change the node.
      url = `${first.url!}?${query.toString()}`;
      t.redirects.push(first.url!);
      if (hop > 20) throw new Error(`${t.user}: too many redirects`);
      continue;
    }
    if (first.type !== 'welcome') throw new Error('unexpected first frame');
    t.conn = c;
    t.node = first.node;
    break;
  }
  if (t.room) {
    const reply = await t.conn.request({ type: 'subscribe', channel: t.room, ...(roomSince ? { since: roomSince } : {}) });
    if ('error' in reply) throw new Error(`subscribe failed: ${reply.error.message}`);
  }
}

async function post(node: NodeProcess, path: string, body: unknown): Promise<Position | undefined> {
  try {
    const res = await fetch(node.url(path), {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    return res.status === 200 ? ((await res.json()) as Position) : undefined;
  } catch {
    return undefined;
  }
}

async function get(node: NodeProcess, path: string): Promise<Record<string, unknown>> {
  const res = await fetch(node.url(path), { headers: { authorization: `Bearer ${KEY}` }, signal: AbortSignal.timeout(5000) });
  return (await res.json()) as Record<string, unknown>;
}

/** Publishes through random live nodes (trying another when one fails); records every acknowledged offset per channel. */
class Publisher {
  readonly acked = new Map<string, number[]>();
  readonly epochs = new Map<string, string>();
  private seq = 0;

  constructor(private readonly live: () => NodeProcess[]) {}

  async one(channel: string): Promise<void> {
    const data = { seq: this.seq++ };
    const user = channel.startsWith('user:') ? channel.slice(5) : undefined;
    for (let attempt = 0; attempt < 10; attempt++) {
      const nodes = this.live();
      const node = nodes[Math.floor(Math.random() * nodes.length)]!;
      const result = user ? await post(node, '/api/send', { user, data }) : await post(node, '/api/publish', { channel, data });
      if (result) {
        const list = this.acked.get(channel) ?? [];
        list.push(result.offset);
        this.acked.set(channel, list);
        this.epochs.set(channel, result.epoch);
        return;
      }
      await sleep(100);
    }
    throw new Error(`could not publish to ${channel} through any node`);
  }

  /** `count` publications to channels picked by `pick`, `concurrency` at a time. */
  async many(count: number, pick: (i: number) => string, concurrency = 8): Promise<void> {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) await this.one(pick(next++));
      }),
    );
  }

  expected(channel: string): number[] {
    return [...(this.acked.get(channel) ?? [])].sort((a, b) => a - b);
  }
}

/** Wait until every tracked user received every acknowledged offset of its channels; then check exactly once, in order. */
async function expectExactlyOnce(tracked: Tracked[], pub: Publisher, timeoutMs = 15_000): Promise<void> {
  const complete = (t: Tracked): boolean => {
    const got = t.received();
    return [t.channel, ...(t.room ? [t.room] : [])].every((ch) => (got.get(ch)?.length ?? 0) >= pub.expected(ch).length);
  };
  await vi.waitUntil(() => tracked.every(complete), { timeout: timeoutMs, interval: 50 }).catch(() => undefined); // the assertions below say what is missing
  // Pause, not a wait: a little longer, so that a duplicate in flight would be seen.
  await sleep(200);
  for (const t of tracked) {
    const got = t.received();
    for (const ch of [t.channel, ...(t.room ? [t.room] : [])]) {
      expect(got.get(ch) ?? [], `${t.user} on ${ch}`).toEqual(pub.expected(ch));
    }
    // Nothing meant for someone else.
    for (const ch of got.keys()) expect([t.channel, t.room]).toContain(ch);
  }
}

describe.each(CASES)('routing: $title', (variant) => {
  let backend: Backend;
  const nodes: NodeProcess[] = [];
  const tracked: Tracked[] = [];
  let pub: Publisher;
  const live = (): NodeProcess[] => nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);

  beforeAll(async () => {
    backend = await variant.backend.start();
    const config = writeConfig({
      insecure: true,
      apiKeys: [KEY],
      heartbeat: 1,
      deadAfterBeats: 2,
      limits: { maxConnectionsPerIpPerSecond: 0 },
      defaultNamespace: { history: { size: 1000, ttl: 600 } },
    });
    const ids = ['r-1', 'r-2', 'r-3'];
    nodes.push(...(await Promise.all(ids.map((id) => startNodeProcess(id, ['--config', config, '--broker', backend.url, ...variant.args])))));
    // Every node sees the others before clients arrive (the ring is complete).
    for (const n of nodes) await vi.waitUntil(async () => ((await get(n, '/api/nodes')).nodes as unknown[]).length >= 3, { timeout: 10_000, interval: 50 });
    pub = new Publisher(live);
    for (let i = 0; i < USERS; i++) {
      const t = new Tracked(`${variant.name.replace(/\W/g, '')}-u${i}`, `room.${i % ROOMS}`);
      tracked.push(t);
      await join(t, nodes[i % 3]!);
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all(tracked.map((t) => t.conn?.close()));
    await Promise.all(nodes.map((n) => n.kill()));
    await backend?.stop();
  }, 30_000);

  it('spreads the users over the nodes; with redirects every user sits on its owner', async () => {
    const used = new Set(tracked.map((t) => t.node));
    expect(used.size).toBe(3);
    const hashring = variant.args.includes('hashring');
    for (const t of tracked) {
      const route = (await get(nodes[0]!, `/api/route?user=${t.user}`)) as { node: string; url: string };
      expect(route.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/ws$/);
      for (const n of nodes.slice(1)) {
        const answer = (await get(n, `/api/route?user=${t.user}`)) as { node: string; url: string };
        // On the ring every node names the owner; otherwise any node serves anyone, and names itself.
        if (hashring) expect(answer).toEqual(route);
        else expect(answer.node).toBe(n.id);
      }
      if (variant.redirect) expect(t.node).toBe(route.node);
    }
    if (variant.redirect) expect(tracked.some((t) => t.redirects.length > 0)).toBe(true);
    else expect(tracked.every((t) => t.redirects.length === 0)).toBe(true);
  });

  it('delivers every message to users and rooms exactly once and in order, published through any node', async () => {
    const rooms = Array.from({ length: ROOMS }, (_, i) => `room.${i}`);
    await Promise.all([
      pub.many(240, (i) => tracked[(i * 7) % USERS]!.channel),
      pub.many(80, (i) => rooms[i % ROOMS]!),
    ]);
    await expectExactlyOnce(tracked, pub);
  });

  it('answers presence for the whole cluster from any node', async () => {
    for (let r = 0; r < ROOMS; r++) {
      const members = tracked.filter((t) => t.room === `room.${r}`).map((t) => t.user).sort();
      for (const n of nodes) {
        const body = (await get(n, `/api/presence/room.${r}`)) as { members: Array<{ user: string; node: string }> };
        expect(body.members.map((m) => m.user).sort()).toEqual(members);
      }
    }
    const someone = tracked[5]!;
    const user = (await get(nodes[2]!, `/api/users/${someone.user}`)) as { online: boolean; sessions: Array<{ node: string }> };
    expect(user.online).toBe(true);
    expect(user.sessions.map((s) => s.node)).toEqual([someone.node]);
  });

  it('a client that reconnects to another node while messages are published to it recovers every one', async () => {
    const t = tracked[1]!;
    const epoch = pub.epochs.get(t.channel)!;
    const publishing = pub.many(150, () => t.channel, 4);
    // Leave mid-stream and come back through another node, recovering from the last offset seen.
    await vi.waitUntil(() => (pub.acked.get(t.channel)?.length ?? 0) >= 60, { timeout: 30_000, interval: 5 });
    const before = t.node;
    await t.conn!.close();
    t.retire();
    const other = nodes.find((n) => n.id !== before)!;
    await join(t, other, t.position(t.channel, epoch), t.position(t.room!, pub.epochs.get(t.room!)!));
    const welcome = t.conn!.welcome;
    expect(welcome.recovered).toBe(true);
    await publishing;
    await expectExactlyOnce([t], pub);
  });

  it('when a node is killed, its users move to the others and lose nothing; the node leaves the cluster', async () => {
    const victim = nodes[2]!;
    const moved = tracked.filter((t) => t.node === victim.id);
    expect(moved.length).toBeGreaterThan(0);
    await victim.kill();
    const rooms = Array.from({ length: ROOMS }, (_, i) => `room.${i}`);
    // Publishing goes on while the moved users reconnect, each to a surviving node, recovering from where it was.
    const publishing = Promise.all([
      pub.many(120, (i) => tracked[(i * 5) % USERS]!.channel, 4),
      pub.many(40, (i) => rooms[i % ROOMS]!, 2),
    ]);
    await Promise.all(
      moved.map(async (t, i) => {
        await t.conn!.closed;
        t.retire();
        const personal = pub.epochs.get(t.channel)!;
        const room = pub.epochs.get(t.room!)!;
        await join(t, nodes[i % 2]!, t.position(t.channel, personal), t.position(t.room!, room));
        expect(t.conn!.welcome.recovered).toBe(true);
        expect(t.node).not.toBe(victim.id);
      }),
    );
    await publishing;
    await expectExactlyOnce(tracked, pub, 20_000);

    // Wait for the killed node to leave the survivors' lists.
    const survivors = nodes.filter((n) => n !== victim);
    await vi.waitUntil(
      async () => {
        const lists = await Promise.all(survivors.map(async (n) => ((await get(n, '/api/nodes')).nodes as Array<{ id: string }>).map((m) => m.id)));
        return lists.every((ids) => !ids.includes(victim.id));
      },
      { timeout: 10_000, interval: 100 },
    );
    // From then on no answer shows its sessions, whether the survivors have dropped its entries yet or not.
    for (const n of survivors) {
      for (const room of rooms) {
        const { members } = (await get(n, `/api/presence/${room}`)) as { members: Array<{ node: string }> };
        expect(members.filter((m) => m.node === victim.id)).toEqual([]);
      }
    }
    // Its registry entries (registry, hash ring) and presence entries are dropped at the broker by the survivors.
    const probe = await createBroker(backend.url, { routes: ['subscribers'] });
    const registry = variant.args.includes('registry') || variant.args.includes('hashring');
    await probe.start('probe', { onPublication: () => undefined, onReadyChange: () => undefined, onControl: () => undefined });
    try {
      // Wait for the survivors to drop the killed node's entries.
      await vi.waitUntil(
        async () => {
          const left = registry ? await Promise.all(moved.map(async (t) => (await probe.registry!.registered(t.room!)).includes(victim.id))) : [];
          const present = await Promise.all(moved.map(async (t) => (await probe.store.presence(t.room!)).some((e) => e.node === victim.id)));
          return !left.some(Boolean) && !present.some(Boolean);
        },
        { timeout: 10_000, interval: 200 },
      );
    } finally {
      await probe.close();
    }
  });
});
