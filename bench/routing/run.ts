// One measured run of a strategy at N nodes: counter snapshots around the window,
// paced publishing, accounting of every (client, publication) pair.
import { HashRing } from '../../src/server/routing/ring.js';
import { type Args, type BrokerKind, type BrokerName, CONNECT_CONCURRENCY, DELIVERY_TIMEOUT_MS, DUPLICATE_GRACE_MS, RING_SETTLE_MS, RING_VNODES, type Strategy, type StrategyName, TEXT } from './settings.js';
import { nodeId, type Payload, recipients, roomName, roomOf, type Target, userName } from './traffic.js';
import { http, MAX_IN_FLIGHT } from '../lib/http.js';
import { type BenchNode, metric, spawnNode, stopNode, waitMembership } from '../lib/nodes.js';
import { pooled } from '../lib/pool.js';
import { cpuMs, machineBusyMs, ownCpuMs as benchCpuMs } from '../lib/procs.js';
import { percentile } from '../lib/stats.js';
import { sleep, waitUntil } from '../lib/wait.js';
import { BenchClient, connectFollowing, routeUrl, Tally, wsUrl } from './clients.js';
import { type BenchBroker, type BrokerBytes, startBroker } from './brokers.js';

interface Snapshot {
  brokerUsed: number;
  brokerUnused: number;
  messagesOut: number;
  nodeCpuMs: number;
  bytes: BrokerBytes;
  brokerCpuMs: number;
  benchCpuMs: number;
  machineBusyMs: number;
}

async function scrape(nodes: BenchNode[]): Promise<Pick<Snapshot, 'brokerUsed' | 'brokerUnused' | 'messagesOut'>> {
  const texts = await Promise.all(nodes.map(async (n) => (await http('GET', n.port, '/metrics')).text));
  const sum = (name: string, labels?: string): number => texts.reduce((s, t) => s + metric(t, name, labels), 0);
  return {
    brokerUsed: sum('switchboard_broker_publications_received_total', 'use="used"'),
    brokerUnused: sum('switchboard_broker_publications_received_total', 'use="unused"'),
    messagesOut: sum('switchboard_messages_out_total'),
  };
}

/**
 * Before the window: broker bytes, scrape, then CPU; after it: CPU, then
 * bytes and scrape. So the scrapes and the byte counters' readers (for
 * RabbitMQ a `rabbitmqctl`, an Erlang VM of its own) stay out of the CPU
 * figures.
 */
async function snapshot(nodes: BenchNode[], broker: BenchBroker, when: 'before' | 'after'): Promise<Snapshot> {
  const cpu = async (): Promise<Pick<Snapshot, 'nodeCpuMs' | 'benchCpuMs' | 'machineBusyMs' | 'brokerCpuMs'>> => ({
    nodeCpuMs: nodes.reduce((s, n) => s + cpuMs(n.proc.pid), 0),
    benchCpuMs: benchCpuMs(),
    machineBusyMs: machineBusyMs(),
    brokerCpuMs: await broker.cpuMs(),
  });
  if (when === 'before') {
    const bytes = await broker.bytes(nodes);
    const m = await scrape(nodes);
    return { ...m, ...(await cpu()), bytes };
  }
  const c = await cpu();
  const bytes = await broker.bytes(nodes);
  return { ...(await scrape(nodes)), ...c, bytes };
}

interface Published {
  /** `accepted[i]`: the API answered 200 for plan entry `from + i`. */
  accepted: Uint8Array;
  failed: number;
  firstError: string | undefined;
  ms: number;
}

/** POST plan entries [from, to) at `rate` per second, each to the API of node `floor(pick × N)`. */
async function publishPaced(plan: Target[], from: number, to: number, nodes: BenchNode[], rate: number): Promise<Published> {
  const count = to - from;
  const accepted = new Uint8Array(count);
  let failed = 0;
  let firstError: string | undefined;
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const pending: Array<Promise<void>> = [];
  const started = performance.now();
  const deadline = Date.now() + (count * 1000) / rate + 60_000;
  for (let i = 0; i < count; i++) {
    if (Date.now() > deadline) throw new Error(`publishing ${count} took over ${(count * 1000) / rate + 60_000} ms`);
    const wait = started + (i * 1000) / rate - performance.now();
    if (wait >= 1) await sleep(wait);
    // Requests time out, so this wait is bounded.
    while (inFlight >= MAX_IN_FLIGHT) await new Promise<void>((r) => (wake = r));
    const n = from + i;
    const t = plan[n]!;
    const node = nodes[Math.floor(t.pick * nodes.length)]!;
    const path = t.kind === 'send' ? '/api/send' : '/api/publish';
    const data: Payload = { n, t: performance.now(), text: TEXT };
    const body = JSON.stringify(t.kind === 'send' ? { user: userName(t.user), data } : { channel: roomName(t.room), data });
    inFlight++;
    pending.push(
      http('POST', node.port, path, body)
        .then((res) => {
          if (res.status === 200) accepted[i] = 1;
          else throw new Error(`POST ${path} on ${node.id} → ${res.status} ${res.text}`);
        })
        .catch((err: unknown) => {
          failed++;
          firstError ??= (err as Error).message;
        })
        .finally(() => {
          inFlight--;
          wake?.();
          wake = undefined;
        }),
    );
  }
  await Promise.all(pending);
  return { accepted, failed, firstError, ms: performance.now() - started };
}

interface Accounting {
  /** Copies that should arrive: one per recipient of every accepted publication. */
  expected: number;
  /** Expected copies that arrived (each counted once): the denominator of the per-delivery figures. */
  delivered: number;
  lost: number;
  duplicates: number;
  /** Copies to a client that was not a recipient. */
  stray: number;
}

function account(plan: Target[], from: number, pub: Published, tally: Tally, users: number): Accounting {
  const a: Accounting = { expected: 0, delivered: 0, lost: 0, duplicates: 0, stray: 0 };
  for (let i = 0; i < pub.accepted.length; i++) {
    const n = from + i;
    const rcpt = new Set(recipients(plan[n]!, users));
    for (let c = 0; c < users; c++) {
      const got = tally.got(c, n);
      if (!rcpt.has(c)) {
        a.stray += got;
      } else if (pub.accepted[i]) {
        a.expected++;
        if (got === 0) a.lost++;
        else {
          a.delivered++;
          a.duplicates += got - 1;
        }
      }
    }
  }
  return a;
}

function expectedCopies(plan: Target[], from: number, pub: Published, users: number): number {
  let sum = 0;
  for (let i = 0; i < pub.accepted.length; i++) if (pub.accepted[i]) sum += recipients(plan[from + i]!, users).length;
  return sum;
}

export interface RunResult {
  broker: BrokerName;
  brokerLabel: string;
  strategy: StrategyName;
  label: string;
  nodes: number;
  users: number;
  publications: number;
  failedPublications: number;
  firstError: string | undefined;
  publishMs: number;
  /** Users not on their owner node after connecting (hashring with redirects only). */
  offOwner: number;
  warmupLost: number;
  accounting: Accounting;
  brokerMessages: number;
  brokerUnused: number;
  messagesOut: number;
  /** Bytes in + out at the broker, its Redis store's included (RabbitMQ); NaN when unreadable. */
  brokerBytes: number;
  /** Of `brokerBytes`, the Redis store's (RabbitMQ only, else 0). */
  storeBytes: number;
  nodeCpuMs: number;
  /** The broker's processes (RabbitMQ: the whole server, plus the store). */
  brokerCpuMs: number;
  benchCpuMs: number;
  /**
   * Cores busy with processes other than this benchmark's (nodes, broker,
   * this process) during the window, steal included: other work on the
   * machine, which the latency figures feel most.
   */
  otherCores: number;
  windowMs: number;
  /** Runs this row is the median of. */
  repeats: number;
  latencyMs: { p50: number; p99: number; max: number; samples: number };
  perDelivery: { brokerMessages: number; brokerBytes: number; storeBytes: number; nodeCpuUs: number; brokerCpuUs: number };
  /** What a figure of this run includes beyond the run, or why it is n/a. */
  notes: string[];
}

export async function routingRun(kind: BrokerKind, n: number, strategy: Strategy, plan: Target[], args: Args, config: string): Promise<RunResult> {
  const broker = await startBroker(kind.name);
  const nodes: BenchNode[] = [];
  const clients: BenchClient[] = [];
  try {
    const ids = Array.from({ length: n }, (_, i) => nodeId(i));
    const started = await Promise.allSettled(ids.map((id) => spawnNode(id, ['--config', config, '--broker', broker.url, ...strategy.args])));
    for (const s of started) if (s.status === 'fulfilled') nodes.push(s.value);
    const failure = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failure) throw failure.reason;
    await waitMembership(nodes, ids);
    const agreedAt = Date.now();

    const tally = new Tally(args.users, plan.length, args.warmup);
    const users = Array.from({ length: args.users }, (_, i) => i);
    await pooled(users, CONNECT_CONCURRENCY, async (u) => {
      const home = nodes[u % n]!;
      const url = strategy.redirect ? await routeUrl(home, u) : wsUrl(home.port, u);
      const c = await connectFollowing(url, u, tally);
      clients.push(c);
      await c.subscribe(roomName(roomOf(u)));
    });
    let offOwner = 0;
    if (strategy.redirect) {
      const ring = new HashRing(ids, RING_VNODES);
      offOwner = clients.filter((c) => ring.owner(userName(c.index)) !== c.node).length;
    }

    // Warm-up: unmeasured, but waited on, so the measured window starts clean.
    const warm = await publishPaced(plan, 0, args.warmup, nodes, args.rate);
    const warmExpected = expectedCopies(plan, 0, warm, args.users);
    await waitUntil(() => tally.received >= warmExpected, DELIVERY_TIMEOUT_MS);
    await sleep(DUPLICATE_GRACE_MS);
    const warmupLost = account(plan, 0, warm, tally, args.users).lost;
    if (strategy.settles) await sleep(agreedAt + RING_SETTLE_MS - Date.now());

    const before = await snapshot(nodes, broker, 'before');
    const windowStart = performance.now();
    const receivedBefore = tally.received;
    const pub = await publishPaced(plan, args.warmup, plan.length, nodes, args.rate);
    const expected = expectedCopies(plan, args.warmup, pub, args.users);
    await waitUntil(() => tally.received - receivedBefore >= expected, DELIVERY_TIMEOUT_MS);
    await sleep(DUPLICATE_GRACE_MS);
    const after = await snapshot(nodes, broker, 'after');
    const windowMs = performance.now() - windowStart;

    const accounting = account(plan, args.warmup, pub, tally, args.users);
    const d = Math.max(1, accounting.delivered);
    const lat = Float64Array.from(tally.latencies).sort();
    const brokerUsed = after.brokerUsed - before.brokerUsed;
    const brokerUnused = after.brokerUnused - before.brokerUnused;
    const nodeCpuMs = after.nodeCpuMs - before.nodeCpuMs;
    const brokerCpuMs = after.brokerCpuMs - before.brokerCpuMs;
    const storeBytes = after.bytes.store - before.bytes.store;
    const brokerBytes = after.bytes.broker - before.bytes.broker + storeBytes;
    // An unknown broker CPU leaves "other load" unknown too, rather than counting the broker as other load.
    const ownMs = nodeCpuMs + brokerCpuMs + (after.benchCpuMs - before.benchCpuMs);
    return {
      broker: kind.name,
      brokerLabel: kind.label,
      strategy: strategy.name,
      label: strategy.label,
      nodes: n,
      users: args.users,
      publications: args.messages,
      failedPublications: pub.failed,
      firstError: pub.firstError,
      publishMs: pub.ms,
      offOwner,
      warmupLost,
      accounting,
      brokerMessages: brokerUsed + brokerUnused,
      brokerUnused,
      messagesOut: after.messagesOut - before.messagesOut,
      brokerBytes,
      storeBytes,
      nodeCpuMs,
      brokerCpuMs,
      benchCpuMs: after.benchCpuMs - before.benchCpuMs,
      otherCores: Math.max(0, after.machineBusyMs - before.machineBusyMs - ownMs) / windowMs,
      windowMs,
      repeats: 1,
      latencyMs: { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), max: lat.length ? lat[lat.length - 1]! : NaN, samples: lat.length },
      perDelivery: {
        brokerMessages: (brokerUsed + brokerUnused) / d,
        brokerBytes: brokerBytes / d,
        storeBytes: storeBytes / d,
        nodeCpuUs: (nodeCpuMs * 1000) / d,
        brokerCpuUs: (brokerCpuMs * 1000) / d,
      },
      notes: [...broker.notes],
    };
  } finally {
    for (const c of clients) c.close();
    await Promise.all(nodes.map(stopNode));
    await broker.stop();
  }
}
