// One storm: a fresh redis-server and three node processes, N SDK clients
// (in client processes) on node A, steady publications to every user
// through B and C; A is killed with SIGKILL and everything the storm is
// judged by is measured until every client is back and every confirmed
// message delivered.
import type { FleetBackoff, StormRecord } from '../../test/helpers/client-fleet.js';
import { writeConfig } from '../../test/helpers/node-process.js';
import { startRedis, type RedisProcess } from '../../test/helpers/redis-server.js';
import { account, RoundPublisher, type Accounting } from '../../test/helpers/round-publisher.js';
import { type BenchNode, spawnNode, stopNode } from '../lib/nodes.js';
import { startHogs } from '../lib/procs.js';
import { redisPid } from '../lib/redis.js';
import { quantiles } from '../lib/stats.js';
import { sleep, waitUntil } from '../lib/wait.js';
import { type ClientProcess, startClientProcess, stopClientProcess } from './clients.js';
import { snapshot, used, type Usage } from './usage.js';
import { pin } from './pin.js';
import { Probes } from './probes.js';
import { Scraper } from './scrape.js';

export const API_KEY = 'storm-key';
/** Users per `/api/broadcast` request. */
const BATCH = 50;
/** Publishing before the kill: the "before" figures come from its last part. */
const WARM_MS = 4_000;
/** Publishing after the last client is back. */
const AFTER_MS = 2_000;
const DELIVERY_TIMEOUT_MS = 30_000;
const PROBES_PER_NODE = 2;
/** How fast the clients first connect to A (A has no admission limit: the fill is not under test). */
const FILL_RATE = 1000;
const FILL_TIMEOUT_MS = 120_000;
const CALL_TIMEOUT_MS = 30_000;

export interface Variant {
  name: string;
  label: string;
  /** The survivors' admission limits; 0 disables. */
  handshakesPerSecond: number;
  handshakesInFlight: number;
  backoff: FleetBackoff;
}

export interface StormSettings {
  clients: number;
  processes: number;
  /** Publications per second (each to one user). */
  rate: number;
  timeoutMs: number;
  /** Survivors on CPU 1, everything else on CPU 0 (see pin.ts). */
  pin: boolean;
  /** Busy-loop processes running from the warm-up until the storm is over (see hog.ts). */
  hogs: number;
}

export interface StormResult {
  variant: string;
  label: string;
  survivorFlags: string[];
  backoff: FleetBackoff;
  clients: number;
  /** Every client welcomed again within the timeout. */
  complete: boolean;
  /** From the kill to the last client's welcome. */
  allBackMs: number;
  reconnectMs: { p50: number; p90: number; p99: number; max: number };
  notRecovered: number;
  byNode: Record<string, number>;
  /** Attempts that ended without a welcome, as the clients saw them, and their close codes. */
  failedAttempts: number;
  clientsWithFailures: number;
  maxFailuresPerClient: number;
  failCodes: Record<string, number>;
  /** `switchboard_connections_rejected_total` of B and C, by reason. */
  refused: Record<string, number>;
  /** Event-loop delay of the survivors (worst of B and C), ms: before the kill and from the kill until all are back. */
  lagBefore: { maxMs: number; p99Ms: number };
  lagStorm: { maxMs: number; p99Ms: number; scrapes: number };
  scrapeFailures: number;
  /** Ping round trips of clients already on B and C, ms. */
  pingBefore: { p50: number; p99: number; max: number; samples: number };
  pingStorm: { p50: number; p99: number; max: number; samples: number };
  /** From the kill until all clients are back: CPU of B + C, client processes, this process, Redis; the rest of the machine, in cores; listen-queue overflows. */
  cpu: Usage;
  publications: { confirmed: number; failed: number } & Accounting;
}

function chunks<T>(items: T[], n: number): T[][] {
  const size = Math.ceil(items.length / n);
  return Array.from({ length: n }, (_, i) => items.slice(i * size, (i + 1) * size)).filter((c) => c.length > 0);
}

async function rejectedByReason(node: BenchNode): Promise<Record<string, number>> {
  const text = await Scraper.text(node.port);
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^switchboard_connections_rejected_total\{.*reason="([^"]+)".*\} (\S+)$/.exec(line);
    if (m) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  }
  return out;
}

/** Polls `ok` until it holds or `timeoutMs` has passed; says so when it gives up. */
async function waitFor(what: string, ok: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const done = await waitUntil(ok, timeoutMs, everyMs);
  if (!done) console.log(`#   gave up waiting for ${what} after ${timeoutMs} ms`);
  return done;
}

export async function stormRun(variant: Variant, s: StormSettings, log: (line: string) => void): Promise<StormResult> {
  const users = Array.from({ length: s.clients }, (_, i) => `u${i}`);
  let redis: RedisProcess | undefined;
  const nodes: BenchNode[] = [];
  const children: ClientProcess[] = [];
  let probes: Probes | undefined;
  let scraper: Scraper | undefined;
  let publisher: RoundPublisher | undefined;
  let stopHogs = (): void => undefined;
  try {
    redis = await startRedis();
    const config = writeConfig({
      insecure: true,
      apiKeys: [API_KEY],
      // Every client comes from 127.0.0.1: a per-IP limit would act as a node-wide one.
      limits: { maxConnectionsPerIpPerSecond: 0, maxConnectionsPerIp: 0 },
    });
    const base = ['--config', config, '--broker', redis.url];
    const unlimited = ['--max-handshakes-per-second', '0', '--max-handshakes-in-flight', '0'];
    const survivorFlags = [
      ...['--max-handshakes-per-second', String(variant.handshakesPerSecond)],
      ...['--max-handshakes-in-flight', String(variant.handshakesInFlight)],
    ];
    const a = await spawnNode('storm-a', [...base, ...unlimited]);
    nodes.push(a);
    const survivors = await Promise.all(['storm-b', 'storm-c'].map((id) => spawnNode(id, [...base, ...survivorFlags])));
    nodes.push(...survivors);
    if (s.pin) {
      for (const n of survivors) pin(n.proc.pid, 1);
      for (const pid of [a.proc.pid, process.pid, await redisPid(redis.port)]) pin(pid, 0);
    }
    const ws = (n: BenchNode): string => `ws://127.0.0.1:${n.port}/ws`;

    probes = await Probes.start(survivors.map(ws), PROBES_PER_NODE, 10_000);
    scraper = new Scraper(survivors);
    const fill = Date.now();
    const parts = chunks(users, s.processes);
    for (let i = 0; i < parts.length; i++) children.push(startClientProcess());
    if (s.pin) for (const c of children) pin(c.proc.pid, 0);
    await Promise.all(
      children.map((c, i) =>
        c.ask(
          {
            type: 'start',
            users: parts[i]!,
            firstUrl: ws(a),
            reconnectUrls: survivors.map(ws),
            backoff: variant.backoff,
            connectRate: FILL_RATE / children.length,
            timeoutMs: FILL_TIMEOUT_MS,
          },
          FILL_TIMEOUT_MS + 10_000,
        ),
      ),
    );
    log(`#   ${s.clients} clients on storm-a in ${((Date.now() - fill) / 1000).toFixed(1)} s`);

    const maxRounds = Math.ceil(((s.rate / s.clients) * (WARM_MS + s.timeoutMs + AFTER_MS + 10_000)) / 1000) + 2;
    const targets = survivors.map((n) => `http://127.0.0.1:${n.port}`);
    publisher = new RoundPublisher({ users, targets, apiKey: API_KEY, batch: BATCH, perSecond: s.rate, maxRounds });
    publisher.start();
    if (s.hogs > 0) stopHogs = startHogs(s.hogs, WARM_MS + s.timeoutMs + 5_000);
    const warmFrom = Date.now();
    await sleep(WARM_MS);

    await Promise.all(children.map((c) => c.ask({ type: 'arm' }, CALL_TIMEOUT_MS)));
    const survivorPids = survivors.map((n) => n.proc.pid);
    const cpuAtKill = await snapshot(survivorPids, children, redis.port);
    const killedAt = Date.now();
    a.proc.kill('SIGKILL');
    let backAt = killedAt;
    const complete = await waitFor(
      'every client to reconnect',
      async () => {
        const counts = await Promise.all(children.map((c) => c.ask({ type: 'reconnected' }, CALL_TIMEOUT_MS)));
        backAt = Date.now();
        return counts.reduce((t, c) => t + c.count, 0) >= s.clients;
      },
      s.timeoutMs,
    );
    const cpu = used(cpuAtKill, await snapshot(survivorPids, children, redis.port));
    stopHogs();
    log(`#   ${complete ? 'all back' : 'NOT all back'} after ${((backAt - killedAt) / 1000).toFixed(1)} s`);
    await sleep(AFTER_MS);
    await publisher.stop();
    const pub = publisher;

    // Every confirmed publication delivered (or the bounded wait ends).
    const expected = users.map((_, u) => pub.confirmedRounds(u));
    await waitFor(
      'every confirmed message to arrive',
      async () => {
        const answers = await Promise.all(children.map((c) => c.ask({ type: 'distinct' }, CALL_TIMEOUT_MS)));
        const counts = answers.flatMap((x) => x.counts);
        return counts.every((n, u) => n >= expected[u]!.length);
      },
      DELIVERY_TIMEOUT_MS,
      500,
    );
    const storm = await Promise.all(children.map((c) => c.ask({ type: 'records' }, CALL_TIMEOUT_MS)));
    const records: StormRecord[] = storm.flatMap((x) => x.records);
    const refusedParts = await Promise.all(survivors.map(rejectedByReason));
    const refused: Record<string, number> = {};
    for (const part of refusedParts) for (const [k, v] of Object.entries(part)) refused[k] = (refused[k] ?? 0) + v;
    await probes.stop();
    await scraper.stop();

    const back = records.filter((r) => r.reconnectedAt !== undefined);
    const allBackMs = back.length === records.length ? Math.max(...back.map((r) => r.reconnectedAt! - killedAt)) : NaN;
    const stormTo = killedAt + (Number.isFinite(allBackMs) ? allBackMs : backAt - killedAt) + 500;
    const failCodes: Record<string, number> = {};
    for (const r of records) for (const [k, v] of Object.entries(r.failCodes)) failCodes[k] = (failCodes[k] ?? 0) + v;
    const byNode: Record<string, number> = {};
    for (const r of back) byNode[r.node ?? '?'] = (byNode[r.node ?? '?'] ?? 0) + 1;
    const ping = (from: number, to: number) => {
      const q = quantiles(probes!.between(from, to));
      return { p50: q.p50, p99: q.p99, max: q.max, samples: probes!.between(from, to).length };
    };
    const warmStart = warmFrom + 1000;
    const before = scraper.worst(warmStart, killedAt);
    return {
      variant: variant.name,
      label: variant.label,
      survivorFlags,
      backoff: variant.backoff,
      clients: s.clients,
      complete: complete && back.length === records.length,
      allBackMs,
      reconnectMs: quantiles(back.map((r) => r.reconnectedAt! - killedAt)),
      notRecovered: records.filter((r) => r.recovered !== true).length,
      byNode,
      failedAttempts: records.reduce((t, r) => t + r.failedAttempts, 0),
      clientsWithFailures: records.filter((r) => r.failedAttempts > 0).length,
      maxFailuresPerClient: Math.max(0, ...records.map((r) => r.failedAttempts)),
      failCodes,
      refused,
      lagBefore: { maxMs: before.maxMs, p99Ms: before.p99Ms },
      lagStorm: scraper.worst(killedAt, stormTo),
      scrapeFailures: scraper.failures,
      pingBefore: ping(warmStart, killedAt),
      pingStorm: ping(killedAt, stormTo),
      cpu,
      publications: { confirmed: pub.confirmedCount(), failed: pub.failed, ...account(pub, records) },
    };
  } finally {
    stopHogs();
    await publisher?.stop().catch(() => undefined);
    await probes?.stop().catch(() => undefined);
    await scraper?.stop().catch(() => undefined);
    await Promise.all(children.map(stopClientProcess));
    await Promise.all(nodes.map((n) => stopNode(n)));
    await redis?.kill();
  }
}
