/**
 * When a node holding thousands of clients dies, how long until they are
 * all back on the other nodes, and what does the storm do to those nodes?
 *
 *   npm run build && npm run bench -- bench/reconnect-storm.ts [--clients 6000] [--processes 2] [--rate 500]
 *       [--variants naive,jitter-only,limit-only,switchboard] [--handshakes N] [--in-flight N] [--repeat 1] [--pin] [--hog N]
 *       [--timeout 120] [--out file]
 *
 * Each variant on a fresh `redis-server` and three fresh node processes
 * (`bin/switchboard.js`, so dist/ must be built): A (no admission limit: the
 * fill is not under test), B and C (the variant's admission limits). N SDK
 * clients (`SwitchboardClient` with `ws`), run in 1–2 client processes,
 * connect to A; their `resolveUrl` sends every later attempt to B or C at
 * random, as a load balancer that knows A is gone would. Publications go
 * to every user steadily (`/api/broadcast` batches of 50 personal channels,
 * `--rate` per second in all, through B and C). After a warm-up A is
 * killed with SIGKILL, and the benchmark measures:
 *
 * - time from the kill until every client has its `welcome` again, with
 *   `recovered: true` (the SDK has then delivered everything it missed), and
 *   the distribution of that time over the clients;
 * - failed attempts as the clients saw them (refused upgrades are close
 *   1006), and the survivors' refusals by reason
 *   (`switchboard_connections_rejected_total`);
 * - the survivors' worst event-loop delay (prom-client's default
 *   `nodejs_eventloop_lag_max_seconds`, scraped every 500 ms, reset at each
 *   scrape) and the ping round trips of clients already on B and C (two
 *   each, a ping every 100 ms): what the storm does to the clients a
 *   survivor already serves;
 * - the survivors' CPU from the kill until all are back;
 * - messages lost, duplicated or reordered: every (user, round) that the
 *   server confirmed with an offset must reach that user exactly once, in
 *   order (checked after publishing stops and deliveries settle).
 *
 * Variants (ratios are to `naive`, the peer-like baseline):
 * - `naive`: no admission limit, and clients that retry after a fixed
 *   500 ms without jitter, as hand-written clients do;
 * - `jitter-only`: no admission limit, the SDK's full-jitter backoff;
 * - `limit-only`: the node's default admission limits, fixed 500 ms retries;
 * - `switchboard`: the defaults of both, node and SDK.
 *
 * With --pin the survivors share CPU 1 and everything else runs on CPU 0
 * (taskset): unpinned, the clients take CPU from the very nodes they
 * storm, which slows the storm down; pinned, each survivor has half a core,
 * like a node already busy with clients of its own.
 *
 * With --hog N, N busy-loop processes run from the warm-up until all
 * clients are back: a busy machine, reproducibly (on a machine shared with
 * other work, unprotected storms were far worse than on an idle one).
 *
 * With --repeat R the variants run R times, interleaved (so that load from
 * outside the benchmark falls on all of them alike); the tables show
 * medians, and sums of lost, duplicated and unrecovered. The CPU that the
 * rest of the machine used during each storm is printed as "other load".
 *
 * The per-IP limit is off everywhere: every client here is 127.0.0.1 (as
 * behind a load balancer without --trust-proxy), and it would act as a
 * node-wide limit. Results go to bench/results/reconnect-storm-<date>.json.
 * Every loop is bounded in count, every wait in time; traffic stays on
 * 127.0.0.1; every process started here is stopped, on failure too.
 */
import { DEFAULT_LIMITS } from '../src/server/options.js';
import { type Flag, int, parseFlags, toggle, valued } from './lib/flags.js';
import { killAll } from './lib/procs.js';
import { commandVersion, fmt, machine, resultPath, table, today, writeResult } from './lib/report.js';
import { median } from './lib/stats.js';
import { runChild } from './reconnect-storm/child.js';
import { CHILD_FLAG } from './reconnect-storm/protocol.js';
import { stormRun, type StormResult, type StormSettings, type Variant } from './reconnect-storm/run.js';

const MAX_CLIENTS = 20_000;
const FIXED_DELAY_MS = 500;
const USAGE = 'use --clients N, --processes 1|2, --rate N, --variants a,b, --handshakes N, --in-flight N, --repeat N, --pin, --hog N, --timeout S, --out file';

interface Args extends StormSettings {
  variants: string[];
  repeat: number;
  handshakes: number;
  inFlight: number;
  out: string | undefined;
}

const num = (set: (a: Args, n: number) => void, min: number, max: number): Flag<Args> => valued((a, v, flag) => set(a, int(flag, v, min, max)));

const FLAGS: Record<string, Flag<Args>> = {
  '--pin': toggle((a) => (a.pin = true)),
  '--clients': num((a, n) => (a.clients = n), 10, MAX_CLIENTS),
  '--processes': num((a, n) => (a.processes = n), 1, 2),
  '--rate': num((a, n) => (a.rate = n), 1, 5000),
  '--handshakes': num((a, n) => (a.handshakes = n), 1, 1_000_000),
  '--in-flight': num((a, n) => (a.inFlight = n), 0, 1_000_000),
  '--hog': num((a, n) => (a.hogs = n), 0, 8),
  '--repeat': num((a, n) => (a.repeat = n), 1, 10),
  '--timeout': num((a, n) => (a.timeoutMs = n * 1000), 5, 600),
  '--variants': valued((a, v) => (a.variants = v.split(',').filter(Boolean))),
  '--out': valued((a, v) => (a.out = v)),
};

function parseArgs(argv: string[]): Args {
  const args = parseFlags<Args>(argv, {
    clients: 6000,
    processes: 0,
    rate: 500,
    timeoutMs: 120_000,
    variants: ['naive', 'jitter-only', 'limit-only', 'switchboard'],
    repeat: 1,
    pin: false,
    hogs: 0,
    handshakes: DEFAULT_LIMITS.maxHandshakesPerSecond,
    inFlight: DEFAULT_LIMITS.maxHandshakesInFlight,
    out: undefined,
  }, FLAGS, USAGE);
  if (args.processes === 0) args.processes = args.clients > 1500 ? 2 : 1;
  return args;
}

function variants(args: Args): Variant[] {
  const jitter = { kind: 'jitter', min: 500, max: 20_000 } as const;
  const fixed = { kind: 'fixed', delayMs: FIXED_DELAY_MS } as const;
  const limit = { handshakesPerSecond: args.handshakes, handshakesInFlight: args.inFlight };
  const none = { handshakesPerSecond: 0, handshakesInFlight: 0 };
  const all: Variant[] = [
    { name: 'naive', label: 'naive (no limit, fixed 500 ms)', ...none, backoff: fixed },
    { name: 'jitter-only', label: 'SDK jitter, no limit', ...none, backoff: jitter },
    { name: 'limit-only', label: 'limit, fixed 500 ms', ...limit, backoff: fixed },
    { name: 'switchboard', label: 'switchboard (limit + SDK jitter)', ...limit, backoff: jitter },
  ];
  const unknown = args.variants.filter((v) => !all.some((x) => x.name === v));
  if (unknown.length > 0) throw new Error(`unknown variant ${unknown.join(', ')}: use ${all.map((v) => v.name).join(', ')}`);
  return all.filter((v) => args.variants.includes(v.name));
}

// ---- printing --------------------------------------------------------------

const s1 = (ms: number): string => fmt(ms / 1000, 1);
const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
/** `base / x` as "2.00x", or n/a. */
const ratio = (base: number, x: number): string => (Number.isFinite(base) && Number.isFinite(x) && x > 0 ? `${fmt(base / x, 2)}x` : 'n/a');

/** The figures of one variant over its repeats: medians, and sums of what must be zero. */
interface Combined {
  label: string;
  variant: string;
  runs: number;
  complete: boolean;
  allBackMs: number;
  p50Ms: number;
  p99Ms: number;
  failedAttempts: number;
  connectTimeouts: number;
  listenOverflows: number;
  refused: number;
  lagBeforeMs: number;
  lagStormMs: number;
  pingP99Ms: number;
  pingMaxMs: number;
  survivorsCpuMs: number;
  otherCores: number;
  lost: number;
  duplicates: number;
  reordered: number;
  mismatched: number;
  notRecovered: number;
}

function combine(runs: StormResult[]): Combined {
  const med = (f: (r: StormResult) => number): number => median(runs.map(f));
  const total = (f: (r: StormResult) => number): number => runs.reduce((t, r) => t + f(r), 0);
  const first = runs[0]!;
  return {
    label: first.label,
    variant: first.variant,
    runs: runs.length,
    complete: runs.every((r) => r.complete),
    allBackMs: med((r) => r.allBackMs),
    p50Ms: med((r) => r.reconnectMs.p50),
    p99Ms: med((r) => r.reconnectMs.p99),
    failedAttempts: med((r) => r.failedAttempts),
    connectTimeouts: med((r) => r.failCodes['4103'] ?? 0),
    listenOverflows: med((r) => r.cpu.listenOverflows),
    refused: med((r) => sum(r.refused)),
    lagBeforeMs: med((r) => r.lagBefore.maxMs),
    lagStormMs: med((r) => r.lagStorm.maxMs),
    pingP99Ms: med((r) => r.pingStorm.p99),
    pingMaxMs: med((r) => r.pingStorm.max),
    survivorsCpuMs: med((r) => r.cpu.survivorsMs),
    otherCores: med((r) => r.cpu.otherCores),
    lost: total((r) => r.publications.lost),
    duplicates: total((r) => r.publications.duplicates),
    reordered: total((r) => r.publications.reordered),
    mismatched: total((r) => r.publications.mismatched),
    notRecovered: total((r) => r.notRecovered),
  };
}

function mainTable(rows: Combined[]): string {
  return table(
    ['variant', 'all back s', 'p50 s', 'p99 s', 'failed attempts', 'connect timeouts', 'listen overflows', 'refused (B+C)', 'loop delay before ms', 'loop delay storm ms', 'ping p99 ms', 'ping max ms', 'survivors CPU s', 'other load', 'lost', 'dup', 'not recovered'],
    rows.map((r) => [
      r.label,
      s1(r.allBackMs),
      s1(r.p50Ms),
      s1(r.p99Ms),
      fmt(r.failedAttempts),
      fmt(r.connectTimeouts),
      fmt(r.listenOverflows),
      fmt(r.refused),
      fmt(r.lagBeforeMs),
      fmt(r.lagStormMs),
      fmt(r.pingP99Ms),
      fmt(r.pingMaxMs),
      s1(r.survivorsCpuMs),
      fmt(r.otherCores, 2),
      fmt(r.lost),
      fmt(r.duplicates),
      fmt(r.notRecovered),
    ]),
  );
}

function ratioTable(rows: Combined[]): string | undefined {
  const base = rows.find((r) => r.variant === 'naive');
  if (!base) return undefined;
  return table(
    ['variant', 'all back (naive / this)', 'p50 (naive / this)', 'loop delay storm (naive / this)', 'ping p99 (naive / this)', 'ping max (naive / this)'],
    rows
      .filter((r) => r !== base)
      .map((r) => [
        r.label,
        ratio(base.allBackMs, r.allBackMs),
        ratio(base.p50Ms, r.p50Ms),
        ratio(base.lagStormMs, r.lagStormMs),
        ratio(base.pingP99Ms, r.pingP99Ms),
        ratio(base.pingMaxMs, r.pingMaxMs),
      ]),
  );
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const command = `npm run bench -- bench/reconnect-storm.ts ${process.argv.slice(2).join(' ')}`.trim();
  const list = variants(args);
  console.log(`# ${command}`);
  console.log(
    `# ${args.clients} SDK clients in ${args.processes} process(es) on node A of 3; A killed with SIGKILL; reconnects go to B or C at random. ` +
      `${args.rate} publications/s to users through B and C. Survivors' limit where on: ${args.handshakes} handshakes/s, ${args.inFlight} in flight.` +
      (args.pin ? ' Pinned: B and C share CPU 1, everything else CPU 0.' : '') +
      (args.hogs > 0 ? ` ${args.hogs} busy-loop processes during each storm.` : ''),
  );
  const results: StormResult[] = [];
  for (let repeat = 1; repeat <= args.repeat; repeat++) {
    for (const v of list) {
      console.log(`# ${v.label}${args.repeat > 1 ? ` (run ${repeat} of ${args.repeat})` : ''}`);
      results.push(await stormRun(v, args, (line) => console.log(line)));
    }
  }
  const rows = list.map((v) => combine(results.filter((r) => r.variant === v.name)));
  console.log();
  console.log(mainTable(rows));
  const ratios = ratioTable(rows);
  if (ratios) {
    console.log();
    console.log(ratios);
  }
  console.log();
  for (const r of results) {
    const codes = Object.entries(r.failCodes).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';
    const reasons = Object.entries(r.refused).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';
    console.log(
      `# ${r.label}: failed attempts by close code ${codes}; refused by reason ${reasons}; ` +
        `${r.clientsWithFailures} clients had a failed attempt, at most ${r.maxFailuresPerClient}; back on ${JSON.stringify(r.byNode)}; ` +
        `${fmt(r.publications.confirmed)} publications confirmed, ${r.publications.failed} failed, ` +
        `${r.publications.reordered} reordered, ${r.publications.mismatched} with another offset than confirmed; ` +
        `loop delay p99 before/storm ${fmt(r.lagBefore.p99Ms)}/${fmt(r.lagStorm.p99Ms)} ms; ping p99 before ${fmt(r.pingBefore.p99)} ms; ` +
        `${r.scrapeFailures} scrapes timed out; CPU s during the storm: survivors ${s1(r.cpu.survivorsMs)}, clients ${s1(r.cpu.clientsMs)}, ` +
        `bench ${s1(r.cpu.benchMs)}, redis ${s1(r.cpu.redisMs)}, other load ${fmt(r.cpu.otherCores, 2)} cores`,
    );
  }
  const problems = results.filter((r) => {
    const p = r.publications;
    return !r.complete || p.lost + p.duplicates + p.reordered + p.mismatched + r.notRecovered > 0;
  });
  for (const r of problems) {
    const p = r.publications;
    console.log(
      `# PROBLEM in ${r.label}: complete=${r.complete}, lost=${p.lost}, duplicates=${p.duplicates}, reordered=${p.reordered}, ` +
        `mismatched=${p.mismatched}, not recovered=${r.notRecovered}`,
    );
  }

  const out = args.out ?? resultPath(undefined, `reconnect-storm-${today()}`, '.json');
  writeResult(out, `${JSON.stringify({ command, date: new Date().toISOString(), machine: machine({ redis: commandVersion('redis-server', ['--version']) }), settings: args, summary: rows, results }, null, 2)}\n`);
  console.log(`# results: ${out}`);
  if (problems.length > 0) process.exitCode = 1;
}

if (process.argv.includes(CHILD_FLAG)) {
  runChild();
} else {
  process.once('exit', killAll);
  main().catch((err: unknown) => {
    console.error(err);
    killAll();
    process.exit(1);
  });
}
