/**
 * Switchboard against Socket.IO 4 (+ @socket.io/redis-adapter, websocket
 * transport only) and bare ws, at scale, in one run:
 *
 *   npm run build && npm run bench -- bench/scale.ts [--servers switchboard,socketio,ws]
 *       [--idle 3000] [--connect-rate 1000] [--idle-workers N] [--gens N] [--nodes 3]
 *       [--subscribers 1000] [--bursts 10] [--burst 50] [--burst-pause-ms 500]
 *       [--users 3000] [--rates 1000,2000,5000] [--seconds 5] [--publishers-per-node 32]
 *       [--via ws,http,batch] [--layout spread|across] [--batch-in-flight 4] [--search-steps 0]
 *       [--steady-rates 10,100,1000] [--steady-seconds 3] [--steady-max-publications 1000]
 *       [--fanout-size 10000] [--fanout-publications 20] [--fanout-in-flight 1,4,16] [--fanout-workers N]
 *       [--write-delay 0]
 *       [--replay-clients 1000] [--missed 200]
 *       [--memory-connections 5000] [--cpu-clients 1000] [--cpu-messages 200] [--cpu-rate 50]
 *       [--cross-users 500] [--cross-rates 100,500,2000] [--cross-seconds 5] [--cross-warmup 200]
 *       [--connect-nodes 2] [--connect-count 5000] [--connect-rates 500,1000,2000] [--connect-in-flight 50] [--connect-warmup 1000]
 *       [--idle-cpu-sizes 10000,100000] [--idle-cpu-seconds 60]
 *       [--scenarios idle,broadcast,targeted,recovery,memory,broadcast-cpu,cross-node,connect,idle-cpu,steady,fanout] [--skip …] [--out name|path]
 *       [--baseline <built checkout>]
 *
 * Clients live in forked load-generator processes (bench/scale/loadgen.ts),
 * at most 15000 sockets each, each from its own source addresses in
 * 127.0.0.0/8; the targeted publisher is one more process of its own. For
 * each server kind:
 * 1. idle: --idle connections to one server of --idle-workers processes at
 *    --connect-rate per second; connect latency, heap and RSS per connection
 *    summed over every server process (forced GC inside each, probe.ts);
 * 2. broadcast: --subscribers in one room on one server, --bursts bursts of
 *    --burst publications (HTTP, back to back), --burst-pause-ms apart; CPU
 *    of every server process per delivery, deliveries/s, exactly once;
 * 3. targeted: --users on --nodes servers (one Redis), the publisher sends
 *    to one user each, for each of --via in turn: over WebSocket
 *    (Switchboard `send` frames; Socket.IO a `send` event the server turns
 *    into `io.to(user).emit`; ws a `send` frame), one HTTP request each
 *    (`POST /api/send`, the peers' `POST /send`), or Switchboard's batch API
 *    through the server SDK (`SwitchboardApi` with `maxInFlight`
 *    --batch-in-flight: `POST /api/batch` once requests pile up; the peers
 *    have none); --layout spread: users and sends over every server;
 *    across: users on the first server, sends through the others; at each
 *    of --rates for --seconds, then --search-steps more rates looking for
 *    the highest with p99 under 50 ms and nothing refused or lost;
 *    p50/p99/max publish-to-delivery, CPU per message of the servers and
 *    of Redis, refusals;
 * 4. recovery: --replay-clients on a channel with history drop without a
 *    goodbye, --missed messages are published, they rejoin from their
 *    position; missed messages replayed per second.
 *
 * Three more scenarios, with the clients in this process on two servers of
 * each kind (A holds the clients, B takes the publications; bare ws: one
 * process), run when `--scenarios` names them (they were bench/peers.ts;
 * `--scenarios memory,broadcast-cpu,cross-node` is that benchmark):
 * 5. memory: --memory-connections idle connections to A, 100 at once; heap
 *    and RSS per connection inside A after forced GCs, the time to open them;
 * 6. broadcast-cpu: --cpu-clients in one room on A, --cpu-messages
 *    publications through A at --cpu-rate; A's and B's CPU per 1000
 *    deliveries, every delivery counted;
 * 7. cross-node: --cross-users on A, sends over HTTP through B to one user
 *    each at each of --cross-rates for --cross-seconds (after --cross-warmup
 *    unmeasured); p50/p99/max publish-to-delivery and losses.
 *
 * Two more, what a connection costs (bench/scale/cost.ts), with the clients
 * in the load generators on --connect-nodes servers of each kind (bare ws:
 * one), each client in one room, when `--scenarios` names them:
 * 8. connect: after --connect-warmup connections opened and closed
 *    unmeasured, --connect-count connections at each of --connect-rates, then
 *    as fast as possible with --connect-in-flight opening at once; connect
 *    p50/p99, CPU per connect of the servers and of their redis-server;
 * 9. idle-cpu: for each of --idle-cpu-sizes, a fresh cluster (enough
 *    processes per server for 15000 sockets each), the connections opened
 *    as fast as they go with --connect-in-flight at once (0: 500 per
 *    generator), then --idle-cpu-seconds left alone; CPU of the
 *    servers and of their redis-server as % of a core and µs per connection
 *    per minute.
 *
 * Two more, what a message costs (bench/scale/fanout.ts), with the clients
 * in the load generators, when `--scenarios` names them:
 * 10. steady: --subscribers in one room on one server of each kind, for
 *    each of --steady-rates, publications through it one at a time at that
 *    rate for --steady-seconds (at most --steady-max-publications); CPU per
 *    delivery of the servers and of their redis-server less their CPU with
 *    nothing published, every delivery exactly once, p50/p99 (sampled);
 * 11. fanout: --fanout-size connections in one room on one server of
 *    --fanout-workers processes (0: enough for 15000 each; bare ws: one,
 *    so at most 15000), --fanout-publications through it with each of
 *    --fanout-in-flight at once in turn; deliveries per second at the clients, CPU
 *    per delivery of the servers, Redis and the generators, and the share
 *    of the cores each side used.
 *
 * `--write-delay <ms>` starts the Switchboard nodes of the cluster scenarios
 * (and a baseline's, when it knows the setting) with that `--write-delay`;
 * 0, the default, leaves it out.
 *
 * `--baseline <dir>` names another checkout of Switchboard, already built
 * (bin/ and dist/), e.g. the commit before a change: right after this
 * checkout's Switchboard, its nodes (started from its own bin/) run idle,
 * broadcast, memory, broadcast-cpu, connect, idle-cpu, steady and fanout with the same settings, as the row
 * "Switchboard (baseline <commit>)"; the tables add this checkout over the
 * baseline beside the ratios over the peers.
 *
 * Writes bench/results/scale-<date>.json (command, commit, machine, every
 * figure, the baseline's commit and the ratios) and scale-<date>.svg (p99 and p50 against rate; with cross-node,
 * also scale-<date>-cross-node.svg; with steady, scale-<date>-steady.svg); `--out` names them instead, or gives a
 * path (with a `/`) outside bench/results. Every process started here is
 * stopped, on failure too.
 */
import { cpus, loadavg } from 'node:os';
import { type Cluster, startCluster, withCluster } from './lib/cluster.js';
import { agent } from './lib/http.js';
import { bundle } from './lib/paths.js';
import { killAll } from './lib/procs.js';
import { commandVersion, commit, machine, packageVersion, resultPath, today, writeResult } from './lib/report.js';
import { buildServers, type Kind, knowsFlag } from './lib/servers.js';
import { type Args, parseArgs, type Scenario } from './scale/args.js';
import { type Baseline, openBaseline } from './scale/baseline.js';
import { connectCost, idleCpu } from './scale/cost.js';
import { broadcast, fanout, steady } from './scale/fanout.js';
import { Fleet, MAX_SOCKETS_PER_GEN } from './scale/fleet.js';
import { broadcastCpu, crossNode, memory } from './scale/in-process.js';
import { REPLAY_CHANNEL } from './scale/protocol.js';
import {
  broadcastCpuTable, broadcastTable, connectTable, crossNodePlot, crossNodeTable, fanoutTable, idleCpuTable, idleTable, labelOf, memoryTable, P99_BOUND_MS, ratiosOfCurrent, recoveryTable, type ScaleKindResult, steadyPlot, steadyTable, targetedPlot, targetedTable,
} from './scale/report.js';
import { idle, recovery, targeted } from './scale/scenarios.js';

/** History kept on the replay channel (Switchboard), enough for any `--missed`. */
const REPLAY_HISTORY = 10_000;
/** The scenarios that need the load generators. */
const FLEET_SCENARIOS: Scenario[] = ['idle', 'broadcast', 'targeted', 'recovery', 'connect', 'idle-cpu', 'steady', 'fanout'];
/** The scenarios the `--baseline` checkout's Switchboard runs too. */
const BASELINE_SCENARIOS: Scenario[] = ['idle', 'broadcast', 'memory', 'broadcast-cpu', 'connect', 'idle-cpu', 'steady', 'fanout'];

function versions(): Record<string, unknown> {
  return {
    redis: commandVersion('redis-server', ['--version']),
    socketio: packageVersion('socket.io'),
    redisAdapter: packageVersion('@socket.io/redis-adapter'),
    ws: packageVersion('ws'),
    openFilesPerProcess: commandVersion('sh', ['-c', 'ulimit -n']),
    ephemeralPorts: commandVersion('cat', ['/proc/sys/net/ipv4/ip_local_port_range']).replace(/\s+/g, '-'),
  };
}

/** Runs one scenario; a failure is recorded and the run goes on. */
async function scenario<T>(r: ScaleKindResult, name: string, run: () => Promise<T>): Promise<T | undefined> {
  const t0 = Date.now();
  console.log(`${labelOf(r)}: ${name}`);
  try {
    const v = await run();
    console.log(`  ${name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(v, (k, x: unknown) => (k === 'latencies' ? undefined : typeof x === 'number' ? +x.toFixed(3) : x)).slice(0, 600)}`);
    return v;
  } catch (err) {
    console.log(`  ${name} failed: ${(err as Error).message}`);
    r.errors.push(`${name}: ${(err as Error).message}`);
    return undefined;
  }
}

/** Switchboard's config: history on the replay channel's namespace. */
const replayConfig = { namespaces: { [REPLAY_CHANNEL.split(':')[0]!]: { history: { size: REPLAY_HISTORY, ttl: 600 } } } };
/** Switchboard's config for this run: the replay namespace, and `--write-delay` where the nodes know it. */
const nodeConfig = (a: Args, bin: string | undefined): Record<string, unknown> =>
  a.writeDelay > 0 && knowsFlag('write-delay', bin) ? { ...replayConfig, writeDelay: a.writeDelay } : replayConfig;
/** Runs `kind`'s scenarios; with `baseline`, Switchboard nodes of that checkout, in the scenarios it runs too. */
async function runKind(kind: Kind, a: Args, fleet: Fleet | undefined, baseline?: Baseline): Promise<ScaleKindResult> {
  const r: ScaleKindResult = { kind, errors: [], ...(baseline && { baseline: baseline.short }) };
  const on = (s: Scenario): boolean => a.scenarios.includes(s) && (!baseline || BASELINE_SCENARIOS.includes(s));
  const start = (nodes: number, workers: number, memoryAdapter = false): (() => Promise<Cluster>) => () =>
    startCluster(kind, nodes, workers, { config: nodeConfig(a, baseline?.bin), memory: memoryAdapter, bin: baseline?.bin });
  if (fleet && on('idle')) {
    r.idle = await scenario(r, `idle ${a.idle} at ${a.connectRate}/s, ${a.idleWorkers} server process(es)`, () =>
      withCluster(start(1, a.idleWorkers), (c) => idle(fleet, c, a.idle, a.connectRate)));
  }
  // The cost scenarios: processes per server enough for `size` connections over the servers at 15000 each.
  const costWorkers = (size: number): number => Math.max(1, Math.ceil(size / ((kind === 'ws' ? 1 : a.connectNodes) * MAX_SOCKETS_PER_GEN)));
  if (fleet && on('connect')) {
    r.connect = await scenario(r, `connect ${a.connectCount} at ${a.connectRates.join(', ')}/s${a.connectInFlight > 0 ? ` and unpaced, ${a.connectInFlight} in flight` : ''}`, () =>
      withCluster(start(a.connectNodes, costWorkers(a.connectCount)), (c) =>
        connectCost(fleet, c, a.connectCount, a.connectRates, a.connectInFlight, a.connectWarmup, (p) =>
          console.log(`  ${kind} ${p.rate > 0 ? `${p.rate}/s` : `max, ${p.inFlight} in flight`}: ${p.opened}/${p.count} at ${p.achievedRate.toFixed(0)}/s (failed ${p.failed}${p.firstError ? `: ${p.firstError}` : ''}), p50 ${p.connect.p50.toFixed(2)} p99 ${p.connect.p99.toFixed(2)} ms, CPU ${p.cpuUsPerConnect.servers.toFixed(0)} + Redis ${p.cpuUsPerConnect.redis.toFixed(0)} µs/connect`))));
  }
  if (fleet && on('idle-cpu')) {
    for (const size of a.idleCpuSizes) {
      const workers = costWorkers(size);
      const v = await scenario(r, `idle-cpu ${size} over ${kind === 'ws' ? 1 : a.connectNodes} server(s) of ${workers} process(es), ${a.idleCpuSeconds} s`, () =>
        withCluster(start(a.connectNodes, workers), (c) => idleCpu(fleet, c, size, a.connectInFlight || undefined, a.idleCpuSeconds)));
      if (v) (r.idleCpu ??= []).push(v);
    }
  }
  if (fleet && (on('broadcast') || on('targeted') || (on('recovery') && kind === 'switchboard'))) {
    await withCluster(start(kind === 'ws' ? 1 : a.nodes, 1), async (c) => {
      if (on('broadcast')) r.broadcast = await scenario(r, `broadcast ${a.subscribers} subscribers, ${a.bursts} × ${a.burst}`, () => broadcast(fleet, c, a.subscribers, a.bursts, a.burst, a.burstPauseMs));
      if (on('targeted')) {
        // The peers have no batch API.
        const vias = kind === 'switchboard' ? a.via : a.via.filter((v) => v !== 'batch');
        r.targeted = await scenario(r, `targeted ${a.users} users over ${c.ports.length} server(s) (${a.layout}), via ${vias.join(',')}, rates ${a.rates.join(',')}${a.searchSteps > 0 ? `, then ${a.searchSteps} search steps` : ''}`, () =>
          targeted(fleet, c, a.users, a.rates, a.seconds, a.publishersPerNode, { vias, layout: a.layout, batchInFlight: a.batchInFlight, searchSteps: a.searchSteps }, (t) =>
            console.log(`  ${kind} ${t.via} ${t.rate}/s${t.searched ? ' (search)' : ''} (achieved ${t.achievedRate.toFixed(0)}): p50 ${t.latency.p50.toFixed(2)} p99 ${t.latency.p99.toFixed(2)} max ${t.latency.max.toFixed(1)} ms, lost ${t.lost}/${t.sent} (refused ${t.failed}${t.firstError ? `: ${t.firstError}` : ''}); server CPU ${t.cpuUsPerMessage.toFixed(1)} µs/msg, GC max ${t.server.gcMaxMs.toFixed(0)}, loop delay max ${t.server.loopDelayMaxMs.toFixed(0)}; generators' loop delay max ${t.generatorLoopDelayMaxMs.toFixed(0)} ms`)));
      }
      if (on('recovery') && kind === 'switchboard') r.recovery = await scenario(r, `recovery ${a.replayClients} × ${a.missed}`, () => recovery(fleet, c, a.replayClients, a.missed, `${c.ports.length} nodes, Redis history, subscribe with since`));
    });
  }
  if (fleet && on('steady')) {
    r.steady = await scenario(r, `steady ${a.subscribers} subscribers, ${a.steadyRates.join(', ')} publications/s for ${a.steadySeconds} s (at most ${a.steadyMaxPublications})`, () =>
      withCluster(start(1, 1), (c) =>
        steady(fleet, c, a.subscribers, a.steadyRates, a.steadySeconds, a.steadyMaxPublications, (t) =>
          console.log(`  ${kind} ${t.rate}/s (achieved ${t.achievedRate.toFixed(0)}): ${t.delivered}/${t.expected} (lost ${t.lost}, dup ${t.duplicates}), ${t.deliveriesPerSecond.toFixed(0)} deliveries/s, CPU ${t.cpuUsPerDelivery.servers.toFixed(2)} + Redis ${t.cpuUsPerDelivery.redis.toFixed(2)} µs/delivery, p50 ${t.latency.p50.toFixed(1)} p99 ${t.latency.p99.toFixed(1)} ms`))));
  }
  if (fleet && on('fanout')) {
    // Bare ws has one process's maps: its workers cannot reach each other's sockets.
    const workers = kind === 'ws' ? 1 : a.fanoutWorkers;
    r.fanout = await scenario(r, `fanout ${a.fanoutSize} connections on one server of ${workers} process(es), ${a.fanoutPublications} publications, ${a.fanoutInFlight.join(', ')} in flight`, () => {
      if (a.fanoutSize > MAX_SOCKETS_PER_GEN * workers) throw new Error(`${a.fanoutSize} connections need ${Math.ceil(a.fanoutSize / MAX_SOCKETS_PER_GEN)} server processes${kind === 'ws' ? '; bare ws has no fan-out across processes' : ''}`);
      return withCluster(start(1, workers), (c) =>
        fanout(fleet, c, a.fanoutSize, a.fanoutPublications, a.fanoutInFlight, (f) =>
          console.log(`  ${kind} ${f.inFlight} in flight: ${f.delivered}/${f.expected} (lost ${f.lost}, dup ${f.duplicates}) in ${f.seconds.toFixed(1)} s, ${f.deliveriesPerSecond.toFixed(0)} deliveries/s; CPU ${f.cpuUsPerDelivery.servers.toFixed(2)} + Redis ${f.cpuUsPerDelivery.redis.toFixed(2)} µs/delivery, generators ${f.generatorCpuUsPerDelivery.toFixed(2)}`)));
    });
  }
  if (fleet && on('recovery') && kind === 'socketio') {
    r.recovery = await scenario(r, `recovery ${a.replayClients} × ${a.missed}`, () =>
      withCluster(start(1, 1, true), (c) => recovery(fleet, c, a.replayClients, a.missed, '1 server, in-memory adapter, connectionStateRecovery (the Redis adapter does not support it)')));
  }
  if (on('recovery') && kind === 'ws') r.recovery = { supported: false, reason: 'bare ws keeps no history' };
  if (on('memory') || on('broadcast-cpu') || on('cross-node')) {
    await withCluster(start(kind === 'ws' ? 1 : 2, 1), async (c) => {
      if (on('memory')) r.memory = await scenario(r, `memory, ${a.memoryConnections} idle connections`, () => memory(c, a.memoryConnections));
      if (on('broadcast-cpu')) r.broadcastCpu = await scenario(r, `broadcast-cpu ${a.cpuClients} × ${a.cpuMessages} at ${a.cpuRate}/s`, () => broadcastCpu(c, a.cpuClients, a.cpuMessages, a.cpuRate));
      if (on('cross-node')) r.crossNode = await scenario(r, `cross-node ${a.crossUsers} users on A, sends through B`, () => crossNode(c, a.crossUsers, a.crossRates, a.crossSeconds, a.crossWarmup));
    });
  }
  return r;
}

function tables(a: Args, results: ScaleKindResult[]): string {
  const on = (s: Scenario): boolean => a.scenarios.includes(s);
  const parts: Array<[boolean, string, string]> = [
    [on('idle'), `## Idle connections (${a.idle} to one server of ${a.idleWorkers} process(es), ${a.connectRate} new/s; memory summed over the server's processes after forced GC)`, idleTable(results)],
    [on('broadcast'), `## Broadcast (${a.subscribers} subscribers of one room on one server, ${a.bursts} bursts of ${a.burst} publications ${a.burstPauseMs} ms apart; CPU of every server process)`, broadcastTable(results)],
    [on('targeted'), `## Targeted (${a.users} users, ${a.nodes} servers, one Redis; ${a.layout === 'across' ? 'users on the first server, sends through the others' : 'users and sends spread over the servers'}; via ${a.via.join(', ')}${a.via.includes('batch') ? ` (SDK maxInFlight ${a.batchInFlight})` : ''}; ${a.seconds} s per rate; ws: one process)`, targetedTable(results)],
    [on('recovery'), `## Recovery (${a.replayClients} clients drop, ${a.missed} messages published, they rejoin from their position)`, recoveryTable(results)],
    [on('memory'), `## Idle memory (${a.memoryConnections} connections to one server process, clients in this process; memory inside it after forced GC)`, memoryTable(results)],
    [on('broadcast-cpu'), `## Broadcast CPU (${a.cpuClients} clients in one room on one server, ${a.cpuMessages} publications at ${a.cpuRate}/s)`, broadcastCpuTable(results)],
    [on('connect'), `## Connect (${a.connectCount} connections per phase over ${a.connectNodes} servers, one Redis; ws: one server; each client in one room; CPU from the first connect to 1 s after the last, less the cluster's CPU with no clients)`, connectTable(results)],
    [on('idle-cpu'), `## Idle CPU (connections over ${a.connectNodes} servers, one Redis; ws: one server; opened ${a.connectInFlight || 'up to 500 per generator'} at once, then ${a.idleCpuSeconds} s with no traffic)`, idleCpuTable(results)],
    [on('steady'), `## Broadcast at steady rates (${a.subscribers} subscribers of one room on one server; publications one at a time through it at each rate for ${a.steadySeconds} s, at most ${a.steadyMaxPublications}; CPU of every server process and of its redis-server, less their CPU with nothing published)`, steadyTable(results)],
    [on('fanout'), `## Fan-out maximum (${a.fanoutSize} connections in one room on one server of ${a.fanoutWorkers} processes (bare ws: one), ${a.fanoutPublications} publications with ${a.fanoutInFlight.join(', ')} in flight in turn; % of one core over the phase, the machine has ${cpus().length} cores)`, fanoutTable(results)],
    [on('cross-node'), `## Cross-node latency (${a.crossUsers} users on server A, sends through server B, ${a.crossSeconds} s per rate; ws: one process)`, crossNodeTable(results)],
  ];
  return parts.filter(([run]) => run).map(([, head, body]) => `${head}\n${body}`).join('\n\n');
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const command = `npm run bench -- bench/scale.ts ${process.argv.slice(2).join(' ')}`.trim();
  const m = { ...machine(versions()), loadEnd: [] as number[] };
  const at = commit();
  const useFleet = a.scenarios.some((s) => FLEET_SCENARIOS.includes(s));
  const baseline = a.baseline === undefined ? undefined : openBaseline(a.baseline);
  const dirty = (x: { dirty: boolean }): string => (x.dirty ? ' (with uncommitted changes)' : '');
  console.log(`# ${command}`);
  console.log(`# commit ${at.commit}${dirty(at)}; ${JSON.stringify(m)}`);
  if (baseline) console.log(`# baseline ${baseline.dir} at commit ${baseline.commit}${dirty(baseline)}: ${BASELINE_SCENARIOS.filter((s) => a.scenarios.includes(s)).join(', ') || 'none of its scenarios asked'}`);
  if (useFleet) console.log(`# ${a.gens} load generators + 1 publisher`);
  await buildServers();
  if (useFleet) await bundle('bench/scale/loadgen.ts', 'scale-loadgen');
  const began = Date.now();
  const fleet = useFleet ? new Fleet(a.gens) : undefined;
  const results: ScaleKindResult[] = [];
  try {
    // The baseline right after this checkout's Switchboard (last without it), so that both see the machine alike.
    const runs: Array<[Kind, Baseline | undefined]> = a.servers.map((k) => [k, undefined]);
    if (baseline) runs.splice(a.servers.includes('switchboard') ? a.servers.indexOf('switchboard') + 1 : runs.length, 0, ['switchboard', baseline]);
    for (const [kind, base] of runs) {
      results.push(await runKind(kind, a, fleet, base));
      console.log(`  (${((Date.now() - began) / 1000).toFixed(0)} s so far)`);
    }
  } finally {
    await fleet?.stop();
  }
  m.loadEnd = loadavg().map((x) => +x.toFixed(2));
  const seconds = (Date.now() - began) / 1000;
  const text = tables(a, results);
  console.log(`\n${text}`);
  for (const r of results) for (const e of r.errors) console.log(`! ${labelOf(r)}: ${e}`);
  console.log(`\n# ${seconds.toFixed(0)} s; load average ${m.loadStart.join('/')} at the start, ${m.loadEnd.join('/')} at the end, on ${cpus().length} cores`);
  const name = `scale-${today()}`;
  const written = [writeResult(resultPath(a.out, name, '.json'), `${JSON.stringify({ command, date: new Date().toISOString(), ...at, baseline: baseline && { dir: baseline.dir, commit: baseline.commit, dirty: baseline.dirty }, seconds, machine: m, args: a, p99BoundMs: P99_BOUND_MS, ratios: ratiosOfCurrent(results), results, tables: text }, null, 2)}\n`)];
  if (a.scenarios.includes('targeted')) written.push(writeResult(resultPath(a.out, name, '.svg'), targetedPlot(results, `targeted sends, ${a.nodes} nodes, ${a.layout} (${a.seconds} s per rate)`)));
  if (a.scenarios.includes('steady')) written.push(writeResult(resultPath(a.out, name, '-steady.svg'), steadyPlot(results, `broadcast to ${a.subscribers} subscribers at steady rates`)));
  if (a.scenarios.includes('cross-node')) written.push(writeResult(resultPath(a.out, name, '-cross-node.svg'), crossNodePlot(results, `p99 latency, targeted sends across nodes (${a.crossSeconds} s per rate)`)));
  console.log(`wrote ${written.join(', ')}`);
}

/** Interrupted (Ctrl-C, `timeout`, a closed stdout pipe): stop every process started here before going. */
function bail(code: number): void {
  killAll();
  process.exit(code);
}
process.once('SIGINT', () => bail(130));
process.once('SIGTERM', () => bail(143));
process.stdout.on('error', () => bail(141));

try {
  await main();
} finally {
  killAll();
  agent.destroy();
}
