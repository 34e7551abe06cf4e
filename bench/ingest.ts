/**
 * What the ingests cost and how fast they deliver (issue 18): records
 * written to a PostgreSQL outbox, produced to Kafka, or posted over HTTP,
 * delivered to WebSocket clients, on Switchboard and on Socket.IO fed the
 * way a team without an ingest would, in one run:
 *
 *   npm run build && npm run bench -- bench/ingest.ts [--rates 1000,5000] [--seconds 5]
 *       [--channels 20] [--nodes 1] [--batch 10] [--writers 4] [--poll 1000] [--lanes 16]
 *       [--drain 10] [--relay-commit each|interval] [--servers switchboard,socketio] [--out name|path]
 *
 * One PostgreSQL (test/helpers/postgres-server.ts) with the outbox table,
 * one Kafka broker (test/helpers/kafka-server.ts, KRaft) with two topics of
 * 3 partitions, both for the whole run. Then, each over a redis-server of
 * its own (bench/lib/cluster.ts):
 *
 * - Switchboard, `--nodes` nodes each with `--ingest postgres://…?table=outbox`
 *   and `--ingest kafka://…/bench?group=…`. Paths: `outbox` (rows in
 *   transactions of `--batch` rows, on `--writers` connections, a channel
 *   always on the same one), `kafka` (records keyed by channel, acks -1)
 *   and `http` (`POST /api/publish`, at most 64 in flight: what a service
 *   does without an ingest).
 * - Socket.IO with the Redis adapter (bench/lib/servers/sio-server.ts).
 *   Paths: `kafka`, through a relay process (bench/lib/servers/kafka-relay.ts:
 *   a consumer group member posting each record to `POST /publish` and
 *   committing its offset after the answer, each partition in order;
 *   `--relay-commit interval`: every 200 ms instead, as the ingest does),
 *   and `http` (`POST /publish`, 64 in flight). It has no outbox path.
 *
 * `--channels` clients in this process, one per channel. Each phase writes
 * `rate × seconds` records spread evenly over the channels and over time (a
 * timer every 10 ms writes what is due), each with data `{seq, t}`, `t` when
 * it was written. Per phase: records per second delivered, latency from
 * `t` to arrival (p50/p99/max), records lost (not delivered within
 * `--drain` s of the last write), duplicates, records that overtook an
 * earlier one of their channel; CPU per record delivered of the servers
 * (nodes, or Socket.IO server) with their redis-server, of the source
 * (PostgreSQL, all its processes; the Kafka JVM) and of the relay, each
 * less what it spends at rest over as long (measured just before), from
 * /proc. Each path is warmed up first (a few records per channel, all
 * delivered, or the run fails). What a phase leaves undelivered would land
 * in the next: it is waited for, unmeasured (up to 30 s), and a relay that
 * fell behind is replaced by one in a new group that starts at the end of
 * the topic. Every loop is bounded in count and time; traffic stays on
 * 127.0.0.1; every process started here is stopped, on failure too.
 */
import { Admin, Producer, stringSerializers } from '@platformatic/kafka';
import { freePort } from '../test/helpers/ports.js';
import { startKafka, type KafkaProcess } from '../test/helpers/kafka-server.js';
import { startPostgres, type PostgresProcess } from '../test/helpers/postgres-server.js';
import { outboxSchema } from '../src/server/ingest/outbox-sql.js';
import { type Cluster, cpuMeter, cpuUsed, startCluster, withCluster } from './lib/cluster.js';
import { choices, int, ints, parseFlags, valued } from './lib/flags.js';
import { getJson, http } from './lib/http.js';
import { metric } from './lib/nodes.js';
import { bundle } from './lib/paths.js';
import { cpuMs, ownCpuMs, runMain, type Server, spawnServer, stopProcess, treeCpuMs } from './lib/procs.js';
import { commit, fmt, machine, packageVersion, ratio, resultPath, table, today, writeResult } from './lib/report.js';
import { buildServers, type Kind } from './lib/servers.js';
import { type Quantiles, quantiles } from './lib/stats.js';
import { sleep, waitUntil } from './lib/wait.js';
import { type Conn, makeConn } from './scale/clients.js';
import { drive, type Feed, httpFeed, kafkaFeed, outboxFeed, type Rec, type Sent } from './ingest/feeds.js';
import { now, type Stamp, Tally } from './ingest/tally.js';

interface Args {
  nodes: number;
  channels: number;
  rates: number[];
  seconds: number;
  batch: number;
  writers: number;
  poll: number;
  lanes: number;
  drain: number;
  relayCommit: 'each' | 'interval';
  servers: ServerKind[];
  out: string | undefined;
}

type ServerKind = Extract<Kind, 'switchboard' | 'socketio'>;
const SERVERS: ServerKind[] = ['switchboard', 'socketio'];
const LABEL: Record<ServerKind, string> = { switchboard: 'Switchboard', socketio: 'Socket.IO' };
type Path = 'outbox' | 'kafka' | 'http';
const PATHS: Record<ServerKind, Path[]> = { switchboard: ['outbox', 'kafka', 'http'], socketio: ['kafka', 'http'] };

const USAGE =
  'npm run bench -- bench/ingest.ts [--rates 1000,5000] [--seconds 5] [--channels 20] [--nodes 1] [--batch 10] [--writers 4] [--poll 1000] [--lanes 16] [--drain 10] [--relay-commit each|interval] [--servers switchboard,socketio] [--out name|path]';

const args = parseFlags<Args>(
  process.argv.slice(2),
  { nodes: 1, channels: 20, rates: [1000, 5000], seconds: 5, batch: 10, writers: 4, poll: 1000, lanes: 16, drain: 10, relayCommit: 'each', servers: SERVERS, out: undefined },
  {
    '--nodes': valued((a, v, f) => (a.nodes = int(f, v, 1, 8))),
    '--channels': valued((a, v, f) => (a.channels = int(f, v, 1, 1_000))),
    '--rates': valued((a, v, f) => (a.rates = ints(f, v, 1, 50_000))),
    '--seconds': valued((a, v, f) => (a.seconds = int(f, v, 1, 60))),
    '--batch': valued((a, v, f) => (a.batch = int(f, v, 1, 1_000))),
    '--writers': valued((a, v, f) => (a.writers = int(f, v, 1, 64))),
    '--poll': valued((a, v, f) => (a.poll = int(f, v, 50, 60_000))),
    '--lanes': valued((a, v, f) => (a.lanes = int(f, v, 1, 1024))),
    '--drain': valued((a, v, f) => (a.drain = int(f, v, 1, 120))),
    '--relay-commit': valued((a, v, f) => (a.relayCommit = choices(f, v, ['each', 'interval'] as const)[0] ?? 'each')),
    '--servers': valued((a, v, f) => (a.servers = choices(f, v, SERVERS))),
    '--out': valued((a, v) => (a.out = v)),
  },
  USAGE,
);

const TABLE = 'outbox';
const TOPIC: Record<ServerKind, string> = { switchboard: 'bench', socketio: 'bench-sio' };
const GROUP: Record<ServerKind, string> = { switchboard: 'switchboard-bench', socketio: 'sio-relay-bench' };
const PARTITIONS = 3;
const channelName = (c: number): string => `bench.c${c}`;
/** Waits, ms: CPU at rest measured before a phase; CPU still counted after its last delivery; a warm-up's deliveries; a backlog after a phase. */
const WAIT = { rest: 1_000, tail: 300, warmup: 30_000, settle: 30_000 } as const;
/** Records per channel of a warm-up, at this rate. */
const WARMUP = { perChannel: 3, rate: 200 } as const;
/** Seqs of phase k start at k × this (above any phase's records per channel). */
const PHASE_SEQS = 10_000_000;

/** CPU per record delivered, µs, each less its resting CPU over the phase. */
interface CpuPerRecord {
  /** The nodes (Socket.IO: its server). */
  server: number;
  redis: number;
  postgres: number;
  kafka: number;
  /** Socket.IO's Kafka relay (Switchboard: none, 0). */
  relay: number;
}

interface Run {
  kind: ServerKind;
  path: Path;
  rate: number;
  sent: Sent;
  delivered: number;
  deliveredPerSecond: number;
  latency: Quantiles;
  lost: number;
  /** Of the lost, delivered while the backlog was waited for after the phase; what is missing after that is `backlog`. */
  late: number;
  backlog: number;
  duplicates: number;
  outOfOrder: number;
  strays: number;
  cpuUs: CpuPerRecord;
  /** This process's CPU over the phase, % of one core: the clients and writers; near 100 it is the bottleneck. */
  benchCpuPercent: number;
  /** Socket.IO's relay over the phase. */
  relay?: RelayStats;
}

/** What the relay's `GET /stats` answers: totals since it started. In a run: over the phase, `postMs` and `commitMs` the mean wait per record. */
interface RelayStats {
  relayed: number;
  skipped: number;
  postMs: number;
  commitMs: number;
  firstError?: string;
}

function relayPhase(a: RelayStats, b: RelayStats): RelayStats {
  const n = Math.max(1, b.relayed + b.skipped - a.relayed - a.skipped);
  return { relayed: b.relayed - a.relayed, skipped: b.skipped - a.skipped, postMs: (b.postMs - a.postMs) / n, commitMs: (b.commitMs - a.commitMs) / n, ...(b.firstError ? { firstError: b.firstError } : {}) };
}

/** The processes whose CPU a phase reads. */
interface Procs {
  cluster: Cluster;
  postgres: PostgresProcess;
  kafka: KafkaProcess;
  relay: Relay | undefined;
}

/** CPU ms spent by each process (and by this one, `bench`) over `ms` of wall time. */
type Spent = CpuPerRecord & { ms: number; bench: number };

/** Starts counting every process's CPU; each call of the answer reads what was spent since, ms. */
function meter(p: Procs): () => Spent {
  const cluster = cpuMeter(p.cluster);
  const pg0 = treeCpuMs(p.postgres.pid ?? 0);
  const kafka0 = cpuMs(p.kafka.pid);
  const relayPid = p.relay?.server.proc.pid;
  const relay0 = cpuMs(relayPid);
  const bench0 = ownCpuMs();
  return () => {
    const c = cluster();
    return {
      server: c.servers,
      redis: c.redis,
      postgres: cpuUsed(pg0, treeCpuMs(p.postgres.pid ?? 0)),
      kafka: cpuMs(p.kafka.pid) - kafka0,
      relay: cpuMs(relayPid) - relay0,
      bench: ownCpuMs() - bench0,
      ms: c.ms,
    };
  };
}

const CPU_KEYS = ['server', 'redis', 'postgres', 'kafka', 'relay'] as const;

/** `spent` less `rest` (ms per ms over as long), per record, µs. */
function perRecord(spent: Spent, rest: Spent, records: number): CpuPerRecord {
  const out = {} as CpuPerRecord;
  for (const k of CPU_KEYS) out[k] = (Math.max(0, spent[k] - (rest[k] / rest.ms) * spent.ms) * 1000) / Math.max(1, records);
  return out;
}

/** Where deliveries go: the tally of the phase under way (none between phases). */
let current: Tally | undefined;
let phases = 0;

/** One client per channel, spread over the servers, each handing its deliveries to the current tally. */
async function connectClients(kind: ServerKind, c: Cluster): Promise<Conn[]> {
  const conns = Array.from({ length: args.channels }, (_, i) =>
    makeConn({
      kind,
      port: c.ports[i % c.ports.length]!,
      user: `u${i}`,
      join: 'room',
      room: channelName(i),
      localAddress: '127.0.0.1',
      // The scale harness types its payloads {n, t}; ours are {seq, t}.
      onData: (_conn, p) => current?.arrive(i, p as unknown as Stamp, now()),
    }),
  );
  await Promise.all(conns.map((conn) => conn.open()));
  return conns;
}

/** Writes `count` records at `rate` through `feed` and waits for them, up to `drainMs` after the last write. */
async function deliver(feed: Feed, count: number, rate: number, drainMs: number): Promise<{ tally: Tally; sent: Sent; began: number }> {
  const tally = new Tally(args.channels, ++phases * PHASE_SEQS, count);
  current = tally;
  const began = now();
  const recordAt = (i: number): Rec => {
    const r = tally.record(i);
    return { ...r, channel: channelName(r.c) };
  };
  const sent = await drive(feed, recordAt, count, rate, Math.max(2 * args.seconds * 1000, 10_000));
  await waitUntil(() => tally.delivered >= sent.attempted, drainMs);
  return { tally, sent, began };
}

/** A few records per channel through `feed`, every one delivered, or the run fails: connections, consumer groups and JITs are ready. */
async function warmUp(kind: ServerKind, path: Path, feed: Feed): Promise<void> {
  const count = WARMUP.perChannel * args.channels;
  const { tally, sent } = await deliver(feed, count, WARMUP.rate, WAIT.warmup);
  current = undefined;
  if (tally.delivered < count) throw new Error(`${LABEL[kind]} ${path}: warm-up delivered ${tally.delivered} of ${count} within ${WAIT.warmup} ms${sent.firstError ? ` (${sent.firstError})` : ''}`);
}

async function phase(kind: ServerKind, path: Path, feed: Feed, rate: number, procs: Procs): Promise<Run> {
  // The relay works for the kafka path only; in the others it idles, and is left out.
  const relay = path === 'kafka' ? procs.relay : undefined;
  const measured = { ...procs, relay };
  const relayStats = (): Promise<RelayStats> | undefined => relay?.stats();
  const relay0 = await relayStats();
  const restRead = meter(measured);
  await sleep(WAIT.rest);
  const rest = restRead();
  const read = meter(measured);
  const { tally, sent, began } = await deliver(feed, rate * args.seconds, rate, args.drain * 1000);
  await sleep(WAIT.tail);
  const spent = read();
  const relay1 = await relayStats();
  const run: Run = {
    kind,
    path,
    rate,
    sent,
    delivered: tally.delivered,
    deliveredPerSecond: tally.delivered / ((tally.lastAt - began) / 1000),
    latency: quantiles(tally.latencies),
    lost: sent.attempted - tally.delivered,
    late: 0,
    backlog: 0,
    duplicates: tally.duplicates,
    outOfOrder: tally.outOfOrder,
    strays: tally.strays,
    cpuUs: perRecord(spent, rest, tally.delivered),
    benchCpuPercent: (spent.bench / spent.ms) * 100,
    ...(relay0 && relay1 ? { relay: relayPhase(relay0, relay1) } : {}),
  };
  // What is still on its way would land in the next phase: waited for (unmeasured), or left behind with the relay that could not keep up.
  if (relay && run.lost > 0) await relay.skip();
  else await waitUntil(() => tally.delivered >= sent.attempted, WAIT.settle);
  current = undefined;
  run.late = tally.delivered - run.delivered;
  run.backlog = sent.attempted - tally.delivered;
  console.log(
    `${LABEL[kind]} ${path} at ${rate}/s: ${run.delivered}/${sent.attempted} delivered in ${((tally.lastAt - began) / 1000).toFixed(1)} s, p50 ${fmt(run.latency.p50, 1)} p99 ${fmt(run.latency.p99, 1)} ms, ${fmt(run.cpuUs.server + run.cpuUs.redis)} µs/record${run.relay ? `; relay: ${fmt(run.relay.postMs, 1)} ms post + ${fmt(run.relay.commitMs, 1)} ms commit per record` : ''}`,
  );
  return run;
}

/**
 * Socket.IO's Kafka relay (bench/lib/servers/kafka-relay.ts) posting to the
 * server on `sioPort`, ready once its group gave it the topic's partitions.
 * `skip()` replaces it with one in a new group that starts at the end of
 * the topic: the backlog of a phase it could not keep up with stays behind.
 */
class Relay {
  server!: Server;
  private generation = 0;

  constructor(
    private readonly script: string,
    private readonly kafka: KafkaProcess,
    private readonly sioPort: number,
  ) {}

  async start(from: 'earliest' | 'latest' = 'earliest'): Promise<void> {
    const port = await freePort();
    const group = `${GROUP.socketio}-${++this.generation}`;
    const argv = [this.script, String(port), this.kafka.bootstrap, TOPIC.socketio, group, String(this.sioPort), from, args.relayCommit];
    this.server = await spawnServer('kafka relay', port, argv, { readyTimeoutMs: 30_000 });
  }

  stats = (): Promise<RelayStats> => getJson<RelayStats>(this.server.port, '/stats');

  async skip(): Promise<void> {
    await this.stop();
    await this.start('latest');
  }

  stop = (): Promise<void> => stopProcess(this.server.proc);
}

interface Shared {
  postgres: PostgresProcess;
  kafka: KafkaProcess;
  producer: Producer<string, string, string, string>;
  relayScript: string;
}

/** Every path of `kind` at every rate, warmed up first; the cluster and its clients are stopped afterwards. */
async function runKind(kind: ServerKind, s: Shared, ingestCounts: Record<string, number>): Promise<Run[]> {
  const ingest = [`${s.postgres.url}?table=${TABLE}&poll=${args.poll}&lanes=${args.lanes}`, `kafka://${s.kafka.bootstrap}/${TOPIC.switchboard}?group=${GROUP.switchboard}`];
  const start = (): Promise<Cluster> => startCluster(kind, args.nodes, 1, kind === 'switchboard' ? { config: { ingest } } : {});
  return withCluster(start, async (cluster) => {
    const relay = kind === 'socketio' ? new Relay(s.relayScript, s.kafka, cluster.ports[0]!) : undefined;
    await relay?.start();
    const feeds: Partial<Record<Path, Feed>> = {};
    let conns: Conn[] = [];
    try {
      conns = await connectClients(kind, cluster);
      if (kind === 'switchboard') feeds.outbox = await outboxFeed(s.postgres.url, TABLE, args.writers, args.batch);
      feeds.kafka = kafkaFeed(s.producer, TOPIC[kind]);
      feeds.http = httpFeed((i, channel, data) => cluster.publish(i, channel, data), cluster.ports.length);
      for (const path of PATHS[kind]) await warmUp(kind, path, feeds[path]!);
      const runs: Run[] = [];
      const procs: Procs = { cluster, postgres: s.postgres, kafka: s.kafka, relay };
      for (const rate of args.rates) for (const path of PATHS[kind]) runs.push(await phase(kind, path, feeds[path]!, rate, procs));
      if (kind === 'switchboard') Object.assign(ingestCounts, await ingestMetrics(cluster));
      return runs;
    } finally {
      for (const conn of conns) conn.close();
      for (const feed of Object.values(feeds)) await feed.close();
      await relay?.stop();
    }
  });
}

/** The nodes' ingest counters, summed: what each source published, found published before (a duplicate) or dead-lettered, and its rounds that failed. */
async function ingestMetrics(c: Cluster): Promise<Record<string, number>> {
  const texts = await Promise.all(c.ports.map(async (port) => (await http('GET', port, '/metrics')).text));
  const sum = (name: string, labels: string[]): number => texts.reduce((s, t) => s + metric(t, name, labels), 0);
  const out: Record<string, number> = {};
  for (const source of ['postgres', 'kafka']) {
    const of = `source="${source}:`;
    for (const outcome of ['published', 'duplicate', 'dead']) out[`${source} ${outcome}`] = sum('switchboard_ingest_records_total', [of, `outcome="${outcome}"`]);
    out[`${source} failed rounds`] = sum('switchboard_ingest_failures_total', [of]);
  }
  return out;
}

async function main(): Promise<void> {
  await buildServers();
  const relayScript = await bundle('bench/lib/servers/kafka-relay.ts', 'peers-kafka-relay');
  const [postgres, kafka] = await Promise.all([startPostgres(), startKafka()]);
  let producer: Producer<string, string, string, string> | undefined;
  const runs: Run[] = [];
  const ingestCounts: Record<string, number> = {};
  let postgresVersion = 'unknown';
  try {
    await postgres.sql(outboxSchema(TABLE));
    postgresVersion = await postgres.sql('SHOW server_version');
    const admin = new Admin({ clientId: 'bench-admin', bootstrapBrokers: [kafka.bootstrap] });
    await admin.createTopics({ topics: Object.values(TOPIC), partitions: PARTITIONS, replicas: 1 });
    await admin.close();
    producer = new Producer({ clientId: 'bench-producer', bootstrapBrokers: [kafka.bootstrap], serializers: stringSerializers });
    for (const kind of args.servers) runs.push(...(await runKind(kind, { postgres, kafka, producer, relayScript }, ingestCounts)));
  } finally {
    await producer?.close().catch(() => undefined);
    await Promise.all([postgres.stop(), kafka.stop()]);
  }
  report(runs, ingestCounts, { postgres: postgresVersion, kafka: process.env.KAFKA_VERSION ?? '4.1.1' });
}

const find = (runs: Run[], kind: ServerKind, path: Path, rate: number): Run | undefined => runs.find((r) => r.kind === kind && r.path === path && r.rate === rate);
/** CPU per record of the servers and their redis-server, and of Socket.IO's relay (which does, outside, what the ingest does in the node). */
const serverCpu = (r: Run): number => r.cpuUs.server + r.cpuUs.redis + r.cpuUs.relay;
/** `a / b` as `ratio` does, with two significant digits below 0.1 (a p99 can be a thousandth of the other's). */
const times = (a: number | undefined, b: number | undefined): string => (a !== undefined && b !== undefined && a / b > 0 && a / b < 0.1 ? `${(a / b).toPrecision(2)}×` : ratio(a, b));
const sourceCpu = (r: Run): number => (r.path === 'outbox' ? r.cpuUs.postgres : r.path === 'kafka' ? r.cpuUs.kafka : NaN);

function report(runs: Run[], ingestCounts: Record<string, number>, versions: Record<string, string>): void {
  const rows = runs.map((r) => [
    LABEL[r.kind],
    r.path,
    fmt(r.rate),
    `${fmt(r.sent.attempted)}${r.sent.failed ? ` (${fmt(r.sent.failed)} failed)` : ''}`,
    fmt(r.deliveredPerSecond),
    `${fmt(r.sent.write.p50, 1)} / ${fmt(r.sent.write.p99, 1)}`,
    `${fmt(r.latency.p50, 1)} / ${fmt(r.latency.p99, 1)} / ${fmt(r.latency.max, 1)}`,
    fmt(r.lost),
    fmt(r.duplicates),
    fmt(r.outOfOrder),
    fmt(r.cpuUs.server + r.cpuUs.redis),
    fmt(r.cpuUs.relay),
    fmt(sourceCpu(r), 0, '—'),
    fmt(r.benchCpuPercent),
  ]);
  console.log(
    `\n${args.channels} channels (one client each), ${args.seconds} s per phase, ${args.nodes} node(s); outbox: transactions of ${args.batch} rows on ${args.writers} connections, poll ${args.poll} ms, ${args.lanes} lanes; Kafka: ${PARTITIONS} partitions, keyed by channel, acks -1; HTTP: 64 in flight; Socket.IO's relay commits ${args.relayCommit === 'each' ? 'after each record' : 'every 200 ms'}\n`,
  );
  console.log(
    table(
      ['server', 'path', 'rate/s', 'sent', 'delivered/s', 'write p50 / p99 ms', 'p50 / p99 / max ms', 'lost', 'dup', 'out of order', 'server+redis µs/rec', 'relay µs/rec', 'source µs/rec', 'bench CPU %'],
      rows,
      2,
    ),
  );
  for (const r of runs) {
    if (r.sent.firstError) console.log(`${LABEL[r.kind]} ${r.path} at ${r.rate}/s: ${r.sent.failed} records not written (${r.sent.firstError})`);
    if (r.strays) console.log(`${LABEL[r.kind]} ${r.path} at ${r.rate}/s: ${r.strays} deliveries of records of an earlier phase`);
    if (r.lost) console.log(`${LABEL[r.kind]} ${r.path} at ${r.rate}/s: of ${r.lost} lost, ${r.late} came after the drain window, ${r.backlog} never (${r.relay ? 'left behind with the relay' : 'still missing when the next phase began'})`);
  }
  console.log('\nSocket.IO has no outbox path (a team would write its own poller of the table); it is not measured.');
  console.log('server+redis: the nodes (Socket.IO: its server) and their redis-server; relay: the Socket.IO Kafka relay process; source: PostgreSQL (all its processes) for outbox, the Kafka JVM for kafka.');
  if (args.servers.length === 2) {
    const ratioRows = args.rates.flatMap((rate) => {
      const [sb, sio] = [find(runs, 'switchboard', 'kafka', rate), find(runs, 'socketio', 'kafka', rate)];
      const [sbHttp, sioHttp] = [find(runs, 'switchboard', 'http', rate), find(runs, 'socketio', 'http', rate)];
      const cells = (a: number | undefined, b: number | undefined, digits: number): string[] => [`${fmt(a ?? NaN, digits)} / ${fmt(b ?? NaN, digits)}`, times(a, b)];
      return [
        [`${fmt(rate)}/s`, 'kafka', ...cells(sb?.latency.p99, sio?.latency.p99, 1), ...cells(sb && serverCpu(sb), sio && serverCpu(sio), 0), ...cells(sb?.cpuUs.kafka, sio?.cpuUs.kafka, 0)],
        [`${fmt(rate)}/s`, 'http', ...cells(sbHttp?.latency.p99, sioHttp?.latency.p99, 1), ...cells(sbHttp && serverCpu(sbHttp), sioHttp && serverCpu(sioHttp), 0), '', ''],
      ];
    });
    console.log('\nSwitchboard / Socket.IO, same path (CPU per record: servers + redis-server, and the relay, which only Socket.IO has):\n');
    console.log(table(['rate', 'path', 'p99 ms', 'ratio', 'CPU µs/rec', 'ratio', 'Kafka JVM µs/rec', 'ratio'], ratioRows, 2));
  }
  if (Object.values(ingestCounts).some((n) => n > 0)) console.log(`\nSwitchboard ingest counters at the end: ${Object.entries(ingestCounts).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  const extra = { ...versions, socketio: packageVersion('socket.io'), platformaticKafka: packageVersion('@platformatic/kafka'), pg: packageVersion('pg') };
  const file = writeResult(resultPath(args.out, `ingest-${today()}`, '.json'), JSON.stringify({ args, machine: machine(extra), ...commit(), ingestCounts, runs }, null, 2));
  console.log(`\nresults: ${file}`);
}

runMain(main);
