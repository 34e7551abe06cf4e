/**
 * What does one publication cost Redis, in commands and bytes, as the
 * cluster grows?
 *
 *   npm run bench -- bench/redis-fanout.ts [--messages 2000] [--nodes 1,2,4] [--concurrency 16]
 *
 * For each cluster size N, two runs on a fresh `redis-server` each:
 *
 * - interest (what Switchboard does): N nodes, 200 raw WebSocket users
 *   round-robin over them, user i also in room `room.<floor(i/20)>` (so a
 *   room's 20 members sit on every node, as a load balancer would place
 *   them). M publications through the server API, round-robin over the
 *   nodes: M/2 `/api/send` to a random user, then M/2 `/api/publish` to a
 *   random room, each phase waited on until every client got its copy.
 * - broadcast (the baseline: Socket.IO's Redis adapter, a naive design):
 *   every node receives every publication. Emulated with the same N nodes
 *   publishing the same sequence, but no clients; instead one extra
 *   subscriber connection per node (our own `RedisBroker`) SUBSCRIBEd to the
 *   pub/sub channel of every room and every user — what each node would
 *   receive under broadcast.
 *
 * Each run first sends 200 publications (both kinds) unmeasured, to warm
 * the JIT. Redis is read with `INFO stats` (net bytes in/out) and `INFO
 * commandstats` around each phase, after `CONFIG RESETSTAT`, so set-up is
 * not counted. Commandstats counts the commands a Lua script runs, too.
 * Background traffic (cluster heartbeats, health-check PINGs) is measured in
 * an idle window of its own and reported, not subtracted. Presence entries
 * are not refreshed (they live while their node does), so no per-session
 * work lands in a window.
 *
 * Every loop is bounded in count, every wait in time; traffic stays on 127.0.0.1.
 */
import type { BrokerHandlers } from '../src/brokers/broker.js';
import { RedisBroker } from '../src/brokers/redis/redis-broker.js';
import { startNode, type SwitchboardNode } from '../src/server/node.js';
import type { NodeOptionsInput } from '../src/server/options.js';
import { RawClient } from '../test/helpers/raw-client.js';
import { redisCommand, startRedis, type RedisProcess } from '../test/helpers/redis-server.js';
import { type Flag, int, ints, parseFlags, valued } from './lib/flags.js';
import { pooled } from './lib/pool.js';
import { prng } from './lib/random.js';
import { redisInfo } from './lib/redis.js';
import { fmt, table } from './lib/report.js';
import { sleep, waitOrThrow as waitUntil } from './lib/wait.js';

// ---- settings --------------------------------------------------------------

const USERS = 200;
const ROOMS = 10;
const ROOM_SIZE = USERS / ROOMS;
const API_KEY = 'k';
/** Longer than the cluster heartbeat (2 s), so every node's beat falls in it. */
const IDLE_WINDOW_MS = 2200;
/** Publications sent (and delivered) before anything is measured, so the JIT is warm in every run. */
const WARMUP = 200;
const CONNECT_CONCURRENCY = 20;
const PHASE_TIMEOUT_MS = 30_000;
const DELIVERY_TIMEOUT_MS = 15_000;
/** A chat-sized payload; its JSON is printed with the results. */
const TEXT = 'The quick brown fox jumps over the lazy dog while the build is green and nobody is on call.';

interface Args {
  messages: number;
  nodes: number[];
  concurrency: number;
}

const USAGE = 'use --messages N, --nodes 1,2,4, --concurrency N';

const FLAGS: Record<string, Flag<Args>> = {
  '--messages': valued((a, v, flag) => (a.messages = int(flag, v, 2, 1_000_000))),
  '--concurrency': valued((a, v, flag) => (a.concurrency = int(flag, v, 1, 10_000))),
  '--nodes': valued((a, v, flag) => (a.nodes = ints(flag, v, 1, 16))),
};

const parseArgs = (argv: string[]): Args => parseFlags<Args>(argv, { messages: 2000, nodes: [1, 2, 4], concurrency: 16 }, FLAGS, USAGE);

// ---- the traffic -----------------------------------------------------------

type Target = { kind: 'send'; user: number } | { kind: 'room'; room: number };
type Kind = Target['kind'];

const userName = (i: number): string => `u${i}`;
const roomName = (k: number): string => `room.${k}`;
const roomOf = (user: number): number => Math.floor(user / ROOM_SIZE);
const nodeOf = (user: number, n: number): number => user % n;

/** M/2 sends to random users, then M/2 publications to random rooms. */
function plan(messages: number): Record<Kind, Target[]> {
  const rnd = prng(42);
  const half = Math.floor(messages / 2);
  return {
    send: Array.from({ length: half }, () => ({ kind: 'send' as const, user: Math.floor(rnd() * USERS) })),
    room: Array.from({ length: messages - half }, () => ({ kind: 'room' as const, room: Math.floor(rnd() * ROOMS) })),
  };
}

/** The first publications of both kinds again, unmeasured. */
function warmup(targets: Record<Kind, Target[]>): Target[] {
  return [...targets.send.slice(0, WARMUP / 2), ...targets.room.slice(0, WARMUP / 2)];
}

/** Client deliveries a target implies: its user's one connection, or the room's members. */
const deliveriesOf = (t: Target): number => (t.kind === 'send' ? 1 : ROOM_SIZE);

/** Nodes that hold a subscriber of the target under interest routing. */
function interestCopies(t: Target, n: number): number {
  if (t.kind === 'send') return 1;
  const nodes = new Set<number>();
  for (let u = t.room * ROOM_SIZE; u < (t.room + 1) * ROOM_SIZE; u++) nodes.add(nodeOf(u, n));
  return nodes.size;
}

/** POST every target through the nodes' server API, round-robin, at most `concurrency` in flight. */
async function publishAll(nodes: SwitchboardNode[], targets: Target[], concurrency: number): Promise<number> {
  const started = performance.now();
  const deadline = Date.now() + PHASE_TIMEOUT_MS;
  await pooled(targets.map((_, i) => i), concurrency, async (i) => {
    if (Date.now() > deadline) throw new Error(`publishing took longer than ${PHASE_TIMEOUT_MS} ms`);
    const t = targets[i]!;
    const node = nodes[i % nodes.length]!;
    const data = { n: i, text: TEXT };
    const [path, body] = t.kind === 'send' ? ['/api/send', { user: userName(t.user), data }] : ['/api/publish', { channel: roomName(t.room), data }];
    const res = await fetch(node.url(path), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`POST ${path} → ${res.status} ${text}`);
  });
  return performance.now() - started;
}

// ---- what Redis says ------------------------------------------------------

interface RedisStats {
  /** Calls per command (script-internal calls included), our INFO/CONFIG left out. */
  calls: Map<string, number>;
  netIn: number;
  netOut: number;
}

/** `INFO stats` first: its own reply is then not in the byte counters it reports. */
async function readStats(port: number): Promise<RedisStats> {
  const stats = await redisInfo(port, 'stats');
  const commands = await redisInfo(port, 'commandstats');
  const calls = new Map<string, number>();
  for (const [key, value] of commands) {
    const name = key.replace(/^cmdstat_/, '');
    if (/^(info|config)\b/.test(name)) continue;
    const count = Number(/calls=(\d+)/.exec(value)?.[1] ?? 0);
    if (count > 0) calls.set(name, count);
  }
  return { calls, netIn: Number(stats.get('total_net_input_bytes')), netOut: Number(stats.get('total_net_output_bytes')) };
}

const resetStats = (port: number): Promise<string> => redisCommand(port, ['CONFIG', 'RESETSTAT']);

const totalCalls = (s: RedisStats): number => [...s.calls.values()].reduce((a, b) => a + b, 0);

// ---- one run ---------------------------------------------------------------

interface Phase {
  pubs: number;
  stats: RedisStats;
  /** Node copies Redis had to send (interest: computed from the layout; broadcast: counted by the subscribers). */
  copies: number;
  /** Client deliveries (interest only). */
  deliveries: number;
  ms: number;
}

interface Run {
  idle: RedisStats;
  phases: Record<Kind, Phase>;
}

const KINDS: Kind[] = ['send', 'room'];

function nodeOptions(i: number, redis: RedisProcess): NodeOptionsInput {
  return {
    port: 0,
    host: '127.0.0.1',
    insecure: true,
    logLevel: 'silent',
    apiKeys: [API_KEY],
    broker: redis.url,
    nodeId: `bench-${i}`,
    // 200 connections from one IP in a second would hit the default per-IP cap.
    limits: { maxConnectionsPerIpPerSecond: 0, maxConnectionsPerIp: 0 },
  };
}

async function startNodes(n: number, redis: RedisProcess): Promise<SwitchboardNode[]> {
  const nodes: SwitchboardNode[] = [];
  for (let i = 0; i < n; i++) nodes.push(await startNode(nodeOptions(i, redis)));
  return nodes;
}

async function idleWindow(port: number): Promise<RedisStats> {
  await resetStats(port);
  await sleep(IDLE_WINDOW_MS);
  return readStats(port);
}

async function interestRun(n: number, targets: Record<Kind, Target[]>, args: Args): Promise<Run> {
  const redis = await startRedis();
  const nodes: SwitchboardNode[] = [];
  const clients: RawClient[] = [];
  try {
    nodes.push(...(await startNodes(n, redis)));
    const users = Array.from({ length: USERS }, (_, i) => i);
    clients.push(
      ...(await pooled(users, CONNECT_CONCURRENCY, async (u) => {
        const node = nodes[nodeOf(u, n)]!;
        const c = await RawClient.connect(`ws://127.0.0.1:${node.port}/ws?user=${userName(u)}`);
        const reply = await c.request({ type: 'subscribe', channel: roomName(roomOf(u)) });
        if ('error' in reply) throw new Error(`subscribe ${roomName(roomOf(u))}: ${JSON.stringify(reply.error)}`);
        return c;
      })),
    );
    const received = (): number => clients.reduce((sum, c) => sum + c.messages().length, 0);
    const warm = warmup(targets);
    await publishAll(nodes, warm, args.concurrency);
    const warmed = warm.reduce((s, t) => s + deliveriesOf(t), 0);
    await waitUntil(`interest N=${n} warm-up`, () => received() >= warmed, DELIVERY_TIMEOUT_MS, () => `${received()} of ${warmed} deliveries`);

    const idle = await idleWindow(redis.port);
    const phases = {} as Record<Kind, Phase>;
    for (const kind of KINDS) {
      const list = targets[kind];
      const expected = list.reduce((s, t) => s + deliveriesOf(t), 0);
      const before = received();
      await resetStats(redis.port);
      const started = performance.now();
      await publishAll(nodes, list, args.concurrency);
      await waitUntil(`interest N=${n} ${kind}`, () => received() - before >= expected, DELIVERY_TIMEOUT_MS, () => `${received() - before} of ${expected} deliveries`);
      const ms = performance.now() - started;
      const stats = await readStats(redis.port);
      const copies = list.reduce((s, t) => s + interestCopies(t, n), 0);
      phases[kind] = { pubs: list.length, stats, copies, deliveries: received() - before, ms };
    }
    return { idle, phases };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(nodes.map((x) => x.close()));
    await redis.stop();
  }
}

/** A node's subscriber connection under broadcast: our own broker, subscribed to every channel. */
async function broadcastSubscriber(i: number, redis: RedisProcess, channels: string[]): Promise<{ broker: RedisBroker; count: () => number }> {
  let count = 0;
  const broker = new RedisBroker(redis.url, { healthCheckMs: 0 });
  const handlers: BrokerHandlers = { onPublication: () => count++, onReadyChange: () => undefined, onControl: () => undefined };
  await broker.start(`bench-broadcast-${i}`, handlers);
  await Promise.all(channels.map((c) => broker.subscribe(c)));
  return { broker, count: () => count };
}

async function broadcastRun(n: number, targets: Record<Kind, Target[]>, args: Args): Promise<Run> {
  const redis = await startRedis();
  const nodes: SwitchboardNode[] = [];
  const subscribers: Array<Awaited<ReturnType<typeof broadcastSubscriber>>> = [];
  try {
    nodes.push(...(await startNodes(n, redis)));
    const channels = [
      ...Array.from({ length: ROOMS }, (_, k) => roomName(k)),
      ...Array.from({ length: USERS }, (_, u) => `user:${userName(u)}`),
    ];
    for (let i = 0; i < n; i++) subscribers.push(await broadcastSubscriber(i, redis, channels));
    const received = (): number => subscribers.reduce((sum, s) => sum + s.count(), 0);
    const warm = warmup(targets);
    await publishAll(nodes, warm, args.concurrency);
    await waitUntil(`broadcast N=${n} warm-up`, () => received() >= warm.length * n, DELIVERY_TIMEOUT_MS, () => `${received()} of ${warm.length * n} node copies`);

    const idle = await idleWindow(redis.port);
    const phases = {} as Record<Kind, Phase>;
    for (const kind of KINDS) {
      const list = targets[kind];
      const before = received();
      await resetStats(redis.port);
      const started = performance.now();
      await publishAll(nodes, list, args.concurrency);
      const expected = list.length * n;
      await waitUntil(`broadcast N=${n} ${kind}`, () => received() - before >= expected, DELIVERY_TIMEOUT_MS, () => `${received() - before} of ${expected} node copies`);
      const ms = performance.now() - started;
      const stats = await readStats(redis.port);
      phases[kind] = { pubs: list.length, stats, copies: received() - before, deliveries: 0, ms };
    }
    return { idle, phases };
  } finally {
    await Promise.all(subscribers.map((s) => s.broker.close()));
    await Promise.all(nodes.map((x) => x.close()));
    await redis.stop();
  }
}

// ---- report ----------------------------------------------------------------

/** Both phases together: the 50/50 mix. */
function merged(run: Run): Phase {
  const { send, room } = run.phases;
  const calls = new Map(send.stats.calls);
  for (const [k, v] of room.stats.calls) calls.set(k, (calls.get(k) ?? 0) + v);
  return {
    pubs: send.pubs + room.pubs,
    stats: { calls, netIn: send.stats.netIn + room.stats.netIn, netOut: send.stats.netOut + room.stats.netOut },
    copies: send.copies + room.copies,
    deliveries: send.deliveries + room.deliveries,
    ms: send.ms + room.ms,
  };
}

function byCommand(p: Phase): string {
  return [...p.stats.calls.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([name, calls]) => (calls * 100 < p.pubs ? `${name} (${calls} calls)` : `${name} ${fmt(calls / p.pubs, 2)}`))
    .join(', ');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const command = ['npm run bench -- bench/redis-fanout.ts', ...process.argv.slice(2)].join(' ');
  const targets = plan(args.messages);
  const payload = JSON.stringify({ n: args.messages, text: TEXT }).length;
  const started = Date.now();
  console.log(`# ${command}`);
  console.log(
    `# ${USERS} users round-robin over N nodes, rooms of ${ROOM_SIZE} (user i in room.<floor(i/${ROOM_SIZE})>), ` +
      `${args.messages} publications per run (${targets.send.length} /api/send, ${targets.room.length} /api/publish), ` +
      `${args.concurrency} in flight, payload ≈ ${payload} B of JSON, history on (defaults)`,
  );

  const results: Array<{ n: number; interest: Run; broadcast: Run }> = [];
  for (const n of args.nodes) {
    const interest = await interestRun(n, targets, args);
    const broadcast = await broadcastRun(n, targets, args);
    results.push({ n, interest, broadcast });
    const m = merged(interest);
    console.log(
      `N=${n}: interest ${fmt(m.stats.netOut / m.pubs)} B out/pub, broadcast ${fmt(merged(broadcast).stats.netOut / m.pubs)} B out/pub ` +
        `(${((Date.now() - started) / 1000).toFixed(1)} s so far)`,
    );
  }

  console.log('\n## Per publication, 50/50 mix of /api/send and /api/publish\n');
  console.log(
    table(
      ['nodes', 'pubs', 'cmds/pub', 'evalsha/pub', 'bytes in/pub', 'node copies/pub (interest)', 'bytes out/pub (interest)', 'bytes out/pub (broadcast baseline)', 'ratio', 'deliveries/pub', 'wall ms', 'pubs/s'],
      results.map(({ n, interest, broadcast }) => {
        const i = merged(interest);
        const b = merged(broadcast);
        return [
          String(n),
          String(i.pubs),
          fmt(totalCalls(i.stats) / i.pubs, 2),
          fmt(((i.stats.calls.get('evalsha') ?? 0) + (i.stats.calls.get('eval') ?? 0)) / i.pubs, 2),
          fmt(i.stats.netIn / i.pubs),
          fmt(i.copies / i.pubs, 2),
          fmt(i.stats.netOut / i.pubs),
          fmt(b.stats.netOut / b.pubs),
          `${fmt(b.stats.netOut / i.stats.netOut, 2)}x`,
          fmt(i.deliveries / i.pubs, 2),
          fmt(i.ms),
          fmt(i.pubs / (i.ms / 1000)),
        ];
      }),
      0,
    ),
  );

  console.log('\n## By kind of publication\n');
  console.log(
    table(
      ['nodes', 'kind', 'pubs', 'node copies/pub (interest)', 'node copies/pub (broadcast)', 'bytes out/pub (interest)', 'bytes out/pub (broadcast)', 'ratio', 'pubs/s (interest)'],
      results.flatMap(({ n, interest, broadcast }) =>
        KINDS.map((kind) => {
          const i = interest.phases[kind];
          const b = broadcast.phases[kind];
          return [
            String(n),
            kind === 'send' ? '/api/send (user)' : '/api/publish (room)',
            String(i.pubs),
            fmt(i.copies / i.pubs, 2),
            fmt(b.copies / b.pubs, 2),
            fmt(i.stats.netOut / i.pubs),
            fmt(b.stats.netOut / b.pubs),
            `${fmt(b.stats.netOut / i.stats.netOut, 2)}x`,
            fmt(i.pubs / (i.ms / 1000)),
          ];
        }),
      ),
      0,
    ),
  );

  console.log('\n## Redis commands per publication (interest; commandstats counts what the Lua script runs)\n');
  for (const { n, interest } of results) console.log(`N=${n}: ${byCommand(merged(interest))}`);

  console.log(`\n## Background (heartbeats, health checks), idle window of ${IDLE_WINDOW_MS} ms, included above\n`);
  for (const { n, interest, broadcast } of results) {
    const share = (run: Run): string => {
      const m = merged(run);
      const bg = (run.idle.netOut / IDLE_WINDOW_MS) * m.ms;
      return `${fmt(run.idle.netOut / (IDLE_WINDOW_MS / 1000))} B out/s, ${fmt(totalCalls(run.idle) / (IDLE_WINDOW_MS / 1000), 1)} cmds/s (≈${fmt((100 * bg) / m.stats.netOut, 1)}% of the bytes out)`;
    };
    console.log(`N=${n}: interest ${share(interest)}; broadcast ${share(broadcast)}`);
  }
  console.log(`\ntotal ${((Date.now() - started) / 1000).toFixed(1)} s, ${new Date().toISOString()}`);
}

main().then(
  () => {
    // Anything a failed close left behind must not keep the process alive.
    setTimeout(() => process.exit(0), 2000).unref();
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
