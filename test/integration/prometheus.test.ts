/**
 * The metrics as an operator sees them: two real node processes over a
 * real redis-server, scraped every second by a real Prometheus (Debian's
 * /usr/bin/prometheus). Every metric named in docs/metrics.md must reach
 * Prometheus from both nodes (names parsed from the doc, so the doc and the
 * code cannot drift), and the traffic the test makes must show up in it:
 * frames in, messages out, publish and history broker round trips,
 * delivery latency, a recovery, an error reply, and a 4129 rate-limit
 * disconnect. The nodes read a PostgreSQL outbox and a Kafka topic
 * (`--ingest`), so that the ingest metrics are there too. Every query of deploy/grafana-dashboard.json must also be
 * valid PromQL to that Prometheus.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ServerFrame } from '../../src/protocol/index.js';
import { CLIENT_FRAME_TYPES } from '../../src/server/metrics.js';
import { api } from '../helpers/api.js';
import { running, tempDir, track, waitExit } from '../helpers/children.js';
import { Admin } from '@platformatic/kafka';
import { outboxSchema } from '../../src/server/ingest/outbox-sql.js';
import { startKafka, type KafkaProcess } from '../helpers/kafka-server.js';
import { startNodeProcess, writeConfig, type NodeProcess } from '../helpers/node-process.js';
import { startPostgres, type PostgresProcess } from '../helpers/postgres-server.js';
import { freePort } from '../helpers/ports.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { sleep } from '../helpers/wait.js';

const PROMETHEUS = '/usr/bin/prometheus';
const KEY = 'prometheus-key';
/** Frames per second per connection: low, so that a flood is closed with 4129 quickly. */
const RATE = 5;
const PUBLISHES = 6;

/** The metric names in the tables of docs/metrics.md (rows that start with a backquoted `switchboard_` name). */
function documentedMetrics(): string[] {
  const doc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
  return [...doc.matchAll(/^\| `(switchboard_[a-z0-9_]+)` \| (counter|gauge|histogram) \|/gm)].map((m) => `${m[1]}:${m[2]}`);
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

interface Prometheus {
  url: string;
  proc: ChildProcess;
  log(): string;
}

/** Start Prometheus on a free port, scraping `targets` every second; retries on a port taken meanwhile. */
async function startPrometheus(targets: string[]): Promise<Prometheus> {
  const dir = tempDir('sb-prom-');
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 900ms',
      'scrape_configs:',
      '  - job_name: switchboard',
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc = spawn(
      PROMETHEUS,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, `data-${attempt}`)}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    track(proc);
    let log = '';
    proc.stderr?.on('data', (c: Buffer) => (log = (log + String(c)).slice(-4000)));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 20_000;
    while (running(proc) && Date.now() < deadline) {
      try {
        if ((await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) })).status === 200) return { url, proc, log: () => log };
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    lastError = log;
    proc.kill('SIGKILL');
    await waitExit(proc, 5000);
  }
  throw new Error(`prometheus did not become ready:\n${lastError}`);
}

/** One instant query against Prometheus's HTTP API. */
async function query(prom: Prometheus, expr: string): Promise<Sample[]> {
  const res = await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(expr)}`, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Sample[] } };
  if (body.status !== 'success' || !body.data) throw new Error(`query ${expr}: ${body.error ?? res.status}`);
  return body.data.result;
}

/** Whether a reply is a success. */
function ok(reply: Extract<ServerFrame, { type: 'reply' }>): boolean {
  return !('error' in reply);
}

/** The sum of the values of `expr` (0 when it has no series). */
async function total(prom: Prometheus, expr: string): Promise<number> {
  return (await query(prom, expr)).reduce((sum, s) => sum + Number(s.value[1]), 0);
}

let redis: RedisProcess | undefined;
let postgres: PostgresProcess | undefined;
let kafka: KafkaProcess | undefined;
const nodes: NodeProcess[] = [];
const clients: RawClient[] = [];
let prom: Prometheus | undefined;

beforeAll(async () => {
  [redis, postgres, kafka] = await Promise.all([startRedis(), startPostgres(), startKafka()]);
  await postgres.sql(outboxSchema('outbox'));
  const admin = new Admin({ clientId: 'prometheus-test', bootstrapBrokers: [kafka.bootstrap] });
  // A partition for each node of the group: each reports the lag of the one it reads.
  await admin.createTopics({ topics: ['events'], partitions: 2, replicas: 1 });
  await admin.close();
  const config = writeConfig({
    ingest: [`${postgres.url}?table=outbox`, `kafka://${kafka.bootstrap}/events?group=prometheus`],
    insecure: true,
    apiKeys: [KEY],
    limits: { maxConnectionsPerIpPerSecond: 0, maxMessagesPerSecond: RATE },
    defaultNamespace: { history: { size: 100, ttl: 600 } },
  });
  nodes.push(...(await Promise.all(['prom-1', 'prom-2'].map((id) => startNodeProcess(id, ['--config', config, '--broker', redis!.url])))));
  prom = await startPrometheus(nodes.map((n) => `127.0.0.1:${n.port}`));
  // The traffic must come after a first scrape of each node, or rate() sees no increase.
  await vi.waitUntil(async () => (await query(prom!, 'up{job="switchboard"} == 1')).length >= nodes.length, { timeout: 15_000, interval: 200 }).catch((err: unknown) => {
    throw new Error(`prometheus did not scrape both nodes within 15 s:\n${prom!.log()}`, { cause: err });
  });
}, 90_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  if (prom && running(prom.proc)) {
    prom.proc.kill('SIGKILL');
    await waitExit(prom.proc, 5000);
  }
  await Promise.all(nodes.map((n) => n.kill()));
  await Promise.all([redis?.kill(), postgres?.stop(), kafka?.kill()]);
});

describe('metrics in a real Prometheus', () => {
  it('the doc lists the metrics to check', () => {
    // A parse that found nothing would make the next test pass vacuously.
    expect(documentedMetrics().length).toBeGreaterThanOrEqual(20);
  });

  it('scrapes both nodes, has every documented metric from each, and shows the traffic', async () => {
    const p = prom!;
    const [n1, n2] = [nodes[0]!, nodes[1]!];

    // Traffic: a subscriber on each node, publishes from a client (node 1) and the API (node 2).
    const a = await RawClient.connect(n1.ws('user=alice'));
    const b = await RawClient.connect(n2.ws('user=bob'));
    clients.push(a, b);
    expect(ok(await a.request({ type: 'subscribe', channel: 'prom.room' }))).toBe(true);
    expect(ok(await b.request({ type: 'subscribe', channel: 'prom.room' }))).toBe(true);
    for (let i = 0; i < PUBLISHES / 2; i++) {
      expect(ok(await a.request({ type: 'publish', channel: 'prom.room', data: i }))).toBe(true);
    }
    for (let i = PUBLISHES / 2; i < PUBLISHES; i++) {
      expect((await api(n2.url(), 'POST', '/api/publish', { channel: 'prom.room', data: i }, KEY)).status).toBe(200);
    }
    for (const c of [a, b]) {
      await expect.poll(() => c.messages('prom.room').length, { timeout: 5000 }).toBe(PUBLISHES);
    }
    // An error reply on each node.
    for (const c of [a, b]) expect(ok(await c.request({ type: 'publish', channel: 'bad channel!', data: 0 }))).toBe(false);

    // a, b and r stay connected (the connections gauge); the flooder does not.
    // A recovery on node 2: a new connection resumes 'prom.room' from its first message.
    const first = b.messages('prom.room')[0]!;
    const r = await RawClient.connect(n2.ws('user=carol'));
    clients.push(r);
    const reply = await r.request({ type: 'subscribe', channel: 'prom.room', since: { offset: first.offset, epoch: first.epoch } });
    expect(reply).toMatchObject({ result: { recovered: true } });

    // A flood on node 1, closed with 4129.
    const flooder = await RawClient.connect(n1.ws('user=flood'));
    clients.push(flooder);
    for (let i = 0; i < RATE * 30; i++) flooder.send({ type: 'ping', id: i + 1 });
    expect((await flooder.closed).code).toBe(4129);

    const names = documentedMetrics();
    const instances = nodes.map((n) => `127.0.0.1:${n.port}`).sort();
    /** What Prometheus has not got yet (empty: all there). */
    const missing = async (): Promise<string[]> => {
      const out: string[] = [];
      const up = await query(p, 'up{job="switchboard"} == 1');
      if (up.map((s) => s.metric.instance).sort().join() !== instances.join()) out.push(`up: ${JSON.stringify(up.map((s) => s.metric.instance))}`);
      for (const entry of names) {
        const [name, type] = entry.split(':') as [string, string];
        for (const series of type === 'histogram' ? [`${name}_bucket`, `${name}_count`] : [name]) {
          const by = (await query(p, `count by (instance) (${series})`)).map((s) => s.metric.instance).sort();
          if (by.join() !== instances.join()) out.push(`${series}: from ${JSON.stringify(by)}`);
        }
      }
      const checks: Array<[string, string, (v: number) => boolean]> = [
        // The publishes to a malformed channel fail to decode: not counted as frames in.
        ['publish frames in', 'sum(switchboard_messages_in_total{type="publish"})', (v) => v === PUBLISHES / 2],
        ['subscribe frames in', 'sum(switchboard_messages_in_total{type="subscribe"})', (v) => v === 3],
        ['messages out', 'sum(switchboard_messages_out_total)', (v) => v >= 2 * PUBLISHES],
        ['publications', 'sum(switchboard_publications_total)', (v) => v === PUBLISHES],
        ['publish round trips', 'sum(switchboard_broker_round_trip_seconds_count{operation="publish"})', (v) => v >= PUBLISHES],
        ['history round trips', 'sum(switchboard_broker_round_trip_seconds_count{operation="history"})', (v) => v >= 3],
        ['delivery latencies', 'sum(switchboard_delivery_latency_seconds_count)', (v) => v >= 2 * PUBLISHES],
        ['recoveries', 'sum(switchboard_recoveries_total{result="recovered"})', (v) => v >= 1],
        ['4129 disconnects', `sum(switchboard_disconnects_total{code="4129", instance="127.0.0.1:${n1.port}"})`, (v) => v === 1],
        ['error replies', 'sum(switchboard_errors_total)', (v) => v >= 2],
        ['connections', 'sum(switchboard_connections)', (v) => v === 3],
        // 3 clients and the flooder were welcomed; the flooder got a disconnect frame; message frames as counted above.
        ['welcome frames out', 'sum(switchboard_frames_out_total{type="welcome"})', (v) => v === 4],
        ['disconnect frames out', `sum(switchboard_frames_out_total{type="disconnect", instance="127.0.0.1:${n1.port}"})`, (v) => v === 1],
        ['message frames out', 'sum(switchboard_frames_out_total{type="message"}) - sum(switchboard_messages_out_total)', (v) => v >= 0],
      ];
      for (const [what, expr, ok] of checks) {
        const v = await total(p, expr);
        if (!ok(v)) out.push(`${what}: ${expr} = ${v}`);
      }
      return out;
    };

    const left = await vi
      .waitUntil(
        async () => {
          const l = await missing();
          if (l.length === 0) return l;
        },
        { timeout: 30_000, interval: 500 },
      )
      .catch(() => missing()); // the assertion below says what is missing
    expect(left, `Prometheus log:\n${p.log()}`).toEqual([]);
  }, 60_000);

  // Runs after the test above (tests in a file run in order): its traffic fills the quantile panels.
  it('evaluates every query of deploy/grafana-dashboard.json, with data in the main panels', async () => {
    const p = prom!;
    const dashboard = JSON.parse(readFileSync(new URL('../../deploy/grafana-dashboard.json', import.meta.url), 'utf8')) as {
      panels: Array<{ title: string; targets: Array<{ expr: string; legendFormat: string }> }>;
    };
    /** Per panel query: the values of the series it returned, or why Prometheus refused it. */
    const evaluate = async (): Promise<{ failed: string[]; seen: Map<string, number[]> }> => {
      const failed: string[] = [];
      const seen = new Map<string, number[]>();
      for (const panel of dashboard.panels) {
        for (const t of panel.targets) {
          // What Grafana substitutes: every node, and a window of several scrapes.
          const expr = t.expr.replaceAll('$instance', '.*').replaceAll('$__rate_interval', '1m');
          try {
            seen.set(`${panel.title} / ${t.legendFormat}`, (await query(p, expr)).map((x) => Number(x.value[1])));
          } catch (err) {
            failed.push(`${panel.title}: ${(err as Error).message}`);
          }
        }
      }
      return { failed, seen };
    };
    /** The series of `title / legend` whose value is a number (a quantile over no increase is NaN). */
    const finite = (values: Map<string, number[]>, key: string): number => (values.get(key) ?? []).filter((v) => Number.isFinite(v)).length;
    const expected = (seen: Map<string, number[]>): boolean =>
      // Gauges: one series per node.
      finite(seen, 'Connections / {{instance}}') === 2 &&
      finite(seen, 'Subscriptions / {{instance}}') === 2 &&
      // Counters through rate() (once two scrapes are in the window): a series per node and frame type, zero-initialised ones included.
      finite(seen, 'Frames in by type / {{instance}} {{type}}') === 2 * CLIENT_FRAME_TYPES.length &&
      // Quantiles of the traffic of the first test: deliveries and broker calls on both nodes.
      finite(seen, 'Delivery latency / {{instance}} p99') === 2 &&
      finite(seen, 'Broker round trip / {{instance}} {{operation}} p99') === 2 * 2;
    // Bounded: scrapes every second, and rate() needs two in its window.
    const got = await vi
      .waitUntil(
        async () => {
          const g = await evaluate();
          if (g.failed.length > 0 || expected(g.seen)) return g;
        },
        { timeout: 15_000, interval: 500 },
      )
      .catch(() => evaluate()); // the assertions below say what is missing
    expect(got.failed).toEqual([]);
    const summary = JSON.stringify(Object.fromEntries(got.seen));
    expect(expected(got.seen), summary).toBe(true);
    const p99 = (key: string): string => (got.seen.get(key) ?? []).map((v) => `${(v * 1000).toFixed(2)} ms`).join(', ');
    console.info(
      `p99 over the last minute, per node: delivery ${p99('Delivery latency / {{instance}} p99')}; broker round trip (publish and history) ${p99('Broker round trip / {{instance}} {{operation}} p99')}`,
    );
  }, 30_000);
});
