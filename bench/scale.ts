/**
 * Switchboard against Socket.IO 4 (+ @socket.io/redis-adapter, websocket
 * transport only) and bare ws, at scale, in one run:
 *
 *   npm run build && npm run bench -- bench/scale.ts [--servers switchboard,socketio,ws]
 *       [--idle 3000] [--connect-rate 1000] [--idle-workers N] [--gens N] [--nodes 3]
 *       [--subscribers 1000] [--bursts 10] [--burst 50] [--burst-pause-ms 500]
 *       [--users 3000] [--rates 1000,2000,5000] [--seconds 5] [--publishers-per-node 32]
 *       [--replay-clients 1000] [--missed 200] [--skip idle,broadcast,targeted,recovery] [--out name]
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
 * 3. targeted: --users spread over --nodes servers (one Redis), the
 *    publisher sends to one user each over WebSocket (Switchboard `send`
 *    frames; Socket.IO a `send` event the server turns into
 *    `io.to(user).emit`; ws a `send` frame) spread over every server, at
 *    each of --rates for --seconds; p50/p99/max publish-to-delivery;
 * 4. recovery: --replay-clients on a channel with history drop without a
 *    goodbye, --missed messages are published, they rejoin from their
 *    position; missed messages replayed per second.
 *
 * Writes bench/results/scale-<date>.json (command, commit, machine, every
 * figure) and scale-<date>.svg (p99 and p50 against rate).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { ROOT } from './routing/settings.js';
import { agent } from './routing/util.js';
import { type Kind, killAll, LABEL } from './peers/servers.js';
import { type Args, parseArgs } from './scale/args.js';
import { Fleet, killGens } from './scale/fleet.js';
import { broadcastTable, idleTable, P99_BOUND_MS, recoveryTable, type ScaleKindResult, svgPlot, targetedTable } from './scale/report.js';
import { broadcast, idle, recovery, targeted } from './scale/scenarios.js';
import { buildAll, type ScaleCluster, startScale } from './scale/servers.js';

function read(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function machine(): Record<string, unknown> {
  return {
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    redis: read('redis-server', ['--version']).split('\n')[0],
    socketio: read(process.execPath, ['-p', "require('socket.io/package.json').version"]),
    redisAdapter: read(process.execPath, ['-p', "require('@socket.io/redis-adapter/package.json').version"]),
    ws: read(process.execPath, ['-p', "require('ws/package.json').version"]),
    openFilesPerProcess: read('sh', ['-c', 'ulimit -n']),
    ephemeralPorts: read('cat', ['/proc/sys/net/ipv4/ip_local_port_range']).replace(/\s+/g, '-'),
  };
}

/** Runs one scenario; a failure is recorded and the run goes on. */
async function scenario<T>(r: ScaleKindResult, name: string, run: () => Promise<T>): Promise<T | undefined> {
  const t0 = Date.now();
  console.log(`${LABEL[r.kind]}: ${name}`);
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

async function withCluster<T>(start: () => Promise<ScaleCluster>, run: (c: ScaleCluster) => Promise<T>): Promise<T> {
  const c = await start();
  try {
    return await run(c);
  } finally {
    await c.stop();
  }
}

async function runKind(kind: Kind, a: Args, fleet: Fleet): Promise<ScaleKindResult> {
  const r: ScaleKindResult = { kind, errors: [] };
  const skip = (s: string): boolean => a.skip.includes(s);
  if (!skip('idle')) {
    r.idle = await scenario(r, `idle ${a.idle} at ${a.connectRate}/s, ${a.idleWorkers} server process(es)`, () =>
      withCluster(() => startScale(kind, 1, a.idleWorkers), (c) => idle(fleet, c, a.idle, a.connectRate)));
  }
  if (!skip('broadcast') || !skip('targeted') || (!skip('recovery') && kind === 'switchboard')) {
    await withCluster(() => startScale(kind, kind === 'ws' ? 1 : a.nodes, 1), async (c) => {
      if (!skip('broadcast')) r.broadcast = await scenario(r, `broadcast ${a.subscribers} subscribers, ${a.bursts} × ${a.burst}`, () => broadcast(fleet, c, a.subscribers, a.bursts, a.burst, a.burstPauseMs));
      if (!skip('targeted')) {
        r.targeted = await scenario(r, `targeted ${a.users} users over ${c.ports.length} server(s), rates ${a.rates.join(',')}`, () =>
          targeted(fleet, c, a.users, a.rates, a.seconds, a.publishersPerNode, (t) =>
            console.log(`  ${kind} ${t.rate}/s (achieved ${t.achievedRate.toFixed(0)}): p50 ${t.latency.p50.toFixed(2)} p99 ${t.latency.p99.toFixed(2)} max ${t.latency.max.toFixed(1)} ms, lost ${t.lost}/${t.sent} (refused ${t.failed}${t.firstError ? `: ${t.firstError}` : ''}); server CPU ${t.cpuUsPerMessage.toFixed(1)} µs/msg, GC max ${t.server.gcMaxMs.toFixed(0)}, loop delay max ${t.server.loopDelayMaxMs.toFixed(0)}; generators' loop delay max ${t.generatorLoopDelayMaxMs.toFixed(0)} ms`)));
      }
      if (!skip('recovery') && kind === 'switchboard') r.recovery = await scenario(r, `recovery ${a.replayClients} × ${a.missed}`, () => recovery(fleet, c, a.replayClients, a.missed, `${c.ports.length} nodes, Redis history, subscribe with since`));
    });
  }
  if (!skip('recovery') && kind === 'socketio') {
    r.recovery = await scenario(r, `recovery ${a.replayClients} × ${a.missed}`, () =>
      withCluster(() => startScale(kind, 1, 1, { memory: true }), (c) => recovery(fleet, c, a.replayClients, a.missed, '1 server, in-memory adapter, connectionStateRecovery (the Redis adapter does not support it)')));
  }
  if (!skip('recovery') && kind === 'ws') r.recovery = { supported: false, reason: 'bare ws keeps no history' };
  return r;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const command = `npm run bench -- bench/scale.ts ${process.argv.slice(2).join(' ')}`.trim();
  const m = { ...machine(), loadStart: loadavg().map((x) => +x.toFixed(2)), loadEnd: [] as number[] };
  const commit = read('git', ['rev-parse', 'HEAD']);
  const dirty = read('git', ['status', '--porcelain', '--untracked-files=no']) !== '';
  console.log(`# ${command}`);
  console.log(`# commit ${commit}${dirty ? ' (with uncommitted changes)' : ''}; ${JSON.stringify(m)}`);
  console.log(`# ${a.gens} load generators + 1 publisher`);
  await buildAll();
  const began = Date.now();
  const fleet = new Fleet(a.gens);
  const results: ScaleKindResult[] = [];
  try {
    for (const kind of a.servers) {
      results.push(await runKind(kind, a, fleet));
      console.log(`  (${((Date.now() - began) / 1000).toFixed(0)} s so far)`);
    }
  } finally {
    fleet.stop();
  }
  m.loadEnd = loadavg().map((x) => +x.toFixed(2));
  const seconds = (Date.now() - began) / 1000;
  const text = [
    `## Idle connections (${a.idle} to one server of ${a.idleWorkers} process(es), ${a.connectRate} new/s; memory summed over the server's processes after forced GC)`,
    idleTable(results),
    '',
    `## Broadcast (${a.subscribers} subscribers of one room on one server, ${a.bursts} bursts of ${a.burst} publications ${a.burstPauseMs} ms apart; CPU of every server process)`,
    broadcastTable(results),
    '',
    `## Targeted (${a.users} users over ${a.nodes} servers, one Redis; publisher over WebSocket spread over the servers; ${a.seconds} s per rate; ws: one process)`,
    targetedTable(results),
    '',
    `## Recovery (${a.replayClients} clients drop, ${a.missed} messages published, they rejoin from their position)`,
    recoveryTable(results),
  ].join('\n');
  console.log(`\n${text}`);
  for (const r of results) for (const e of r.errors) console.log(`! ${LABEL[r.kind]}: ${e}`);
  console.log(`\n# ${seconds.toFixed(0)} s; load average ${m.loadStart.join('/')} at the start, ${m.loadEnd.join('/')} at the end, on ${cpus().length} cores`);
  const name = a.out ?? `scale-${new Date().toISOString().slice(0, 10)}`;
  const dir = `${ROOT}bench/results`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/${name}.json`, `${JSON.stringify({ command, date: new Date().toISOString(), commit, dirty, seconds, machine: m, args: a, p99BoundMs: P99_BOUND_MS, results, tables: text }, null, 2)}\n`);
  writeFileSync(`${dir}/${name}.svg`, svgPlot(results, `targeted sends across ${a.nodes} nodes (${a.seconds} s per rate)`));
  console.log(`wrote bench/results/${name}.json and .svg`);
}

/** Interrupted (Ctrl-C, `timeout`, a closed stdout pipe): stop every process started here before going. */
function bail(code: number): void {
  killGens();
  killAll();
  process.exit(code);
}
process.once('SIGINT', () => bail(130));
process.once('SIGTERM', () => bail(143));
process.stdout.on('error', () => bail(141));

try {
  await main();
} finally {
  killGens();
  killAll();
  agent.destroy();
}
