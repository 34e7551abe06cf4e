/**
 * What does each routing strategy (`--routing`) cost per delivered message
 * as the cluster grows, over each broker, and how many users does hash-ring
 * routing move when a node joins or leaves?
 *
 *   npm run build && npm run bench -- bench/routing.ts [--brokers redis,nats,rabbitmq] [--nodes 1,2,4,8] [--users 400]
 *       [--messages 1000] [--rate 500] [--warmup 200] [--repeat 1] [--strategies broadcast,interest,registry,hashring,hashring-any]
 *       [--no-moved] [--out file]
 *
 * For each broker, each cluster size N and each strategy the broker carries,
 * on a fresh broker (see routing/brokers.ts):
 *
 * - `redis`: a fresh `redis-server`;
 * - `nats`: a fresh `nats-server -js` (interest and broadcast only: a node
 *   refuses registry and hash-ring routing over NATS);
 * - `rabbitmq`: the RabbitMQ already on 127.0.0.1:5672 (guest), with names
 *   of its own per run (`?prefix=`), and a fresh `redis-server` as its store
 *   (`?store=`) for history, presence and the registry.
 *
 * N real node processes (`bin/switchboard.js start`, so dist/ must be built)
 * and U raw WebSocket users in this process, user i also in room
 * `room.<floor(i/20)>`. Users connect round-robin over the nodes, except
 * under `hashring`, which runs with `--hashring-redirect` and connects each
 * user to its owner as `GET /api/route` says (how it is meant to be used);
 * `hashring-any` is hash-ring routing without redirects, users round-robin.
 * Hash-ring runs measure only once the ring has settled (after a change,
 * nodes send messages to users to every node for a few heartbeats).
 *
 * The traffic is the same seeded mix in every run: 80 % `/api/send` to a
 * random user, 20 % `/api/publish` to a random room, each through the API
 * of a random node (keep-alive HTTP), paced at a fixed rate. The payload
 * carries `performance.now()` taken just before the request, so the client
 * (same process, same clock) reads publish-to-delivery latency. Warm-up
 * publications go first, unmeasured. Every (client, publication) pair is
 * accounted: lost, duplicated and misdelivered copies are reported.
 *
 * Around the measured window: each node's `/metrics`
 * (`switchboard_broker_publications_received_total`, used and unused),
 * each node's CPU time (utime + stime of /proc/<pid>/stat), the broker's
 * bytes in + out (publications, replies and background traffic such as
 * heartbeats and registry refreshes) and CPU time — Redis `INFO stats` and
 * `INFO cpu`; NATS `/varz` and the process; RabbitMQ `rabbitmqctl
 * list_connections` of this run's connections plus its Redis store's bytes,
 * and the whole server process — and the machine's /proc/stat: CPU spent by
 * processes outside this benchmark is printed as "other load", since it is
 * what makes the latency figures of a small machine noisy. A figure a broker
 * cannot give is printed n/a, with the reason under the table. Ratios are to `broadcast` at
 * the same N over the same broker, and to Redis for the same strategy and N.
 *
 * Hash-ring moves: (a) computed with `HashRing` over 100,000 user ids, 4 → 5
 * nodes and back; (b) measured: 4 nodes with `--hashring-redirect
 * --heartbeat 1`, U users on their owners, a 5th node starts (count the
 * users closed with 4102, which then follow the URL), then it drains on
 * SIGTERM (count the users closed with 4100, which reconnect through
 * `/api/route`).
 *
 * Results go to bench/results/routing-<date>.json, or routing-<date>-brokers.json
 * when --brokers is not just redis. Every loop is bounded in count, every
 * wait in time; traffic stays on 127.0.0.1; every process started here is
 * stopped, on failure too (RabbitMQ's exchanges and queues are auto-delete:
 * they go with the nodes).
 */
import { execFileSync } from 'node:child_process';
import { writeConfig } from '../test/helpers/node-process.js';
import { choices, type Flag, int, ints, parseFlags, toggle, valued } from './lib/flags.js';
import { agent, MAX_IN_FLIGHT } from './lib/http.js';
import { API_KEY } from './lib/paths.js';
import { killAll } from './lib/procs.js';
import { machine, resultPath, today, writeResult } from './lib/report.js';
import { type Args, BASELINE, type BrokerName, BROKERS, MOVE_HEARTBEAT_S, RING_VNODES, ROOM_SIZE, SEND_SHARE, STRATEGIES, type StrategyName, TEXT } from './routing/settings.js';
import { makePlan, recipients, userName } from './routing/traffic.js';
import { routingRun, type RunResult } from './routing/run.js';
import { computedMoves, measuredMoves, type MovedResult } from './routing/moves.js';
import { brokerTable, combine, fmt, mainTable, movedTable, notes, problems, progress, ratioTable } from './routing/report.js';
import { preflight } from './routing/brokers.js';

const USAGE = 'use --brokers redis,nats,rabbitmq, --nodes 1,2,4,8, --users N, --messages N, --rate N, --warmup N, --repeat N, --strategies a,b, --no-moved, --out file';

const num = (set: (a: Args, n: number) => void, max: number): Flag<Args> => valued((a, v, flag) => set(a, int(flag, v, 1, max)));

const FLAGS: Record<string, Flag<Args>> = {
  '--no-moved': toggle((a) => (a.moved = false)),
  '--brokers': valued((a, v, flag) => (a.brokers = choices(flag, v, Object.keys(BROKERS) as BrokerName[]))),
  '--nodes': valued((a, v, flag) => (a.nodes = ints(flag, v, 1, 16))),
  '--users': num((a, n) => (a.users = n), 5000),
  '--messages': num((a, n) => (a.messages = n), 100_000),
  '--rate': num((a, n) => (a.rate = n), 10_000),
  '--warmup': num((a, n) => (a.warmup = n), 100_000),
  '--repeat': num((a, n) => (a.repeat = n), 20),
  '--strategies': valued((a, v, flag) => (a.strategies = choices(flag, v, Object.keys(STRATEGIES) as StrategyName[]))),
  '--out': valued((a, v) => (a.out = v)),
};

function parseArgs(argv: string[]): Args {
  const args = parseFlags<Args>(argv, {
    brokers: ['redis', 'nats', 'rabbitmq'],
    nodes: [1, 2, 4, 8],
    users: 400,
    // 1000 (2000 before the NATS and RabbitMQ rows): the full run, three brokers, fits in about 10 minutes on 2 cores.
    messages: 1000,
    rate: 500,
    warmup: 200,
    repeat: 1,
    strategies: ['broadcast', 'interest', 'registry', 'hashring', 'hashring-any'],
    moved: true,
    out: undefined,
  }, FLAGS, USAGE);
  // 64 in flight and U sockets here, plus the nodes' own: well inside a ulimit of a few thousand.
  const fds = Number(execFileSync('sh', ['-c', 'ulimit -n']).toString().trim());
  if (Number.isFinite(fds) && fds < args.users + 2 * MAX_IN_FLIGHT + 256) {
    throw new Error(`--users ${args.users} needs more open files than ulimit -n (${fds}) allows: raise it or lower --users`);
  }
  return args;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const command = ['npm run bench -- bench/routing.ts', ...process.argv.slice(2)].join(' ');
  const began = Date.now();
  const plan = makePlan(args);
  const measured = plan.slice(args.warmup);
  const sends = measured.filter((t) => t.kind === 'send').length;
  const perPub = measured.reduce((s, t) => s + recipients(t, args.users).length, 0) / measured.length;
  const payload = JSON.stringify({ n: plan.length, t: 12345.678, text: TEXT }).length;
  console.log(`# ${command}`);
  console.log(
    `# ${args.users} users (user i in room.<floor(i/${ROOM_SIZE})>), ${args.messages} publications at ${args.rate}/s after ${args.warmup} warm-up: ` +
      `${sends} /api/send to a random user, ${args.messages - sends} /api/publish to a random room (${fmt(perPub, 2)} deliveries per publication), ` +
      `through random nodes, payload ≈ ${payload} B of JSON, history on`,
  );
  const config = writeConfig({
    insecure: true,
    apiKeys: [API_KEY],
    limits: { maxConnectionsPerIpPerSecond: 0, maxConnectionsPerIp: 0, maxMessagesPerSecond: 100_000 },
    defaultNamespace: { history: { size: 1000, ttl: 600 } },
  });

  // The hash-ring moves run over Redis whatever --brokers says.
  const info = machine(await preflight(args.brokers.includes('redis') || !args.moved ? args.brokers : ['redis', ...args.brokers]));
  const runs: RunResult[] = [];
  const rows: RunResult[] = [];
  for (const broker of args.brokers.map((b) => BROKERS[b])) {
    const strategies = args.strategies.filter((s) => broker.strategies.includes(s));
    const skipped = args.strategies.filter((s) => !broker.strategies.includes(s));
    if (skipped.length > 0) console.log(`# ${broker.label}: ${skipped.join(', ')} left out (the node refuses them over ${broker.label})`);
    for (const n of args.nodes) {
      const atN: RunResult[] = [];
      for (let round = 0; round < args.repeat; round++) {
        // Rotated, so that no strategy always runs first (or last) at this N.
        const order = strategies.map((_, i) => strategies[(i + round) % strategies.length]!);
        for (const name of order) {
          const r = await routingRun(broker, n, STRATEGIES[name], plan, args, config);
          atN.push(r);
          console.log(`${progress(r)} (${((Date.now() - began) / 1000).toFixed(0)} s so far)`);
        }
      }
      runs.push(...atN);
      for (const name of strategies) rows.push(combine(atN.filter((r) => r.strategy === name)));
    }
  }

  let moved: MovedResult | undefined;
  if (args.moved) {
    const userIds = Array.from({ length: args.users }, (_, i) => userName(i));
    moved = { ...computedMoves(userIds), measured: await measuredMoves(args, config) };
    console.log(`hash-ring moves measured (${((Date.now() - began) / 1000).toFixed(0)} s so far)`);
  }

  const trouble = problems(rows);
  if (trouble.length > 0) {
    console.log('\n## !! Problems\n');
    for (const t of trouble) console.log(`- ${t}`);
  }
  console.log('\n## Per delivered message\n');
  console.log(mainTable(rows));
  console.log(
    '\nbroker msgs: publications the nodes received from the broker (`switchboard_broker_publications_received_total`); unused: share with no local subscriber. ' +
      'broker bytes: bytes in + out at the broker, with publishes, replies, heartbeats and registry refreshes — Redis: `INFO stats` net bytes; ' +
      'NATS: `/varz` in_bytes + out_bytes (client traffic, JetStream API calls included); RabbitMQ: recv_oct + send_oct of the nodes\' own AMQP connections ' +
      '(`rabbitmqctl list_connections`, picked by client port) PLUS the bytes of its Redis store (history, presence, registry), shown again as "of which store". ' +
      'p50/p99: publish (just before the HTTP request) to the client reading the frame. CPU: user + system time of the node processes / of the broker ' +
      '(RabbitMQ: the whole server process, anyone else\'s use of it included, plus its Redis store). ' +
      `other load: cores busy with processes outside this benchmark during the window (steal included).${args.repeat > 1 ? ` Medians of ${args.repeat} runs each.` : ''}`,
  );
  const footnotes = notes(rows);
  if (footnotes.length > 0) console.log(`\nn/a and caveats:\n${footnotes.map((f) => `- ${f}`).join('\n')}`);
  console.log(`\n## Relative to ${BASELINE} over the same broker at the same N (lower is better)\n`);
  console.log(ratioTable(rows));
  const vsRedis = brokerTable(rows);
  if (vsRedis) {
    console.log('\n## Relative to Redis, same strategy and N (lower is better)\n');
    console.log(vsRedis);
  }
  if (moved) {
    console.log(`\n## Hash ring: users moved (vnodes ${RING_VNODES}, heartbeat ${MOVE_HEARTBEAT_S} s for the live part)\n`);
    console.log(movedTable(moved));
    const ms = moved.measured;
    console.log(
      `\nlive: join settled in ${fmt(ms.joinMs / 1000, 1)} s (sessions_moved_total ${ms.movedMetricJoin}), leave in ${fmt(ms.leaveMs / 1000, 1)} s ` +
        `(close codes ${JSON.stringify(ms.leaveCodes)}); users off their owner: ${ms.offOwner.start} at start, ${ms.offOwner.afterJoin} after the join, ${ms.offOwner.afterLeave} after the leave. ` +
        `Ring balance (largest node's share × N): ${fmt(moved.computed.imbalance4, 2)} at 4 nodes, ${fmt(moved.computed.imbalance5, 2)} at 5.`,
    );
  }
  const seconds = (Date.now() - began) / 1000;
  console.log(`\ntotal ${seconds.toFixed(1)} s, ${new Date().toISOString()}, ${String(info.cpus)} × ${String(info.cpu)}`);

  const suffix = args.brokers.length === 1 && args.brokers[0] === 'redis' ? '' : '-brokers';
  const out = args.out ?? resultPath(undefined, `routing-${today()}${suffix}`, '.json');
  const settings = { ...args, roomSize: ROOM_SIZE, sendShare: SEND_SHARE, deliveriesPerPublication: perPub, payloadBytes: payload, maxInFlight: MAX_IN_FLIGHT };
  writeResult(out, `${JSON.stringify({ command, date: new Date().toISOString(), seconds, machine: info, settings, problems: trouble, rows, runs, moved }, null, 2)}\n`);
  console.log(`results: ${out}`);
}

process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

main().then(
  () => {
    agent.destroy();
    // Anything a failed close left behind must not keep the process alive.
    setTimeout(() => process.exit(0), 2000).unref();
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
