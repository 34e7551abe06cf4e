// A load-generator process, forked by the coordinator (fleet.ts) with
// `SCALE_GEN_INDEX` set: it opens its share of the connections from its own
// source addresses (127.0.<index+1>.1–8), counts what they receive in the
// current phase, and in the publisher role sends targeted messages at a fixed
// rate. It stays under the per-process open-file limit (the coordinator gives
// it at most `MAX_SOCKETS_PER_GEN` connections). Commands and replies: protocol.ts.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { sleep } from '../lib/wait.js';
import { serveWorker } from '../lib/workers.js';
import { type Conn, makeConn, openPublisher, type Publisher } from './clients.js';
import {
  type CollectReply, type Command, type ConnectCommand, type ConnectReply, type DropReply, nowMs, type Payload, type PublishCommand,
  type PublishReply, type ReplyOf, type RejoinCommand, type RejoinReply,
} from './protocol.js';

/** Source addresses per generator; each (source, destination) pair has ~28k ephemeral ports. */
const ADDRESSES = 8;
/** A publisher socket with more than this unsent is not written to in this tick: the generator is behind. */
const MAX_BUFFERED_BYTES = 1 << 20;
const REPLY_WAIT_MS = 10_000;

/** Debugging: log each delivery slower than this (ms) when `SCALE_DEBUG_SLOW_MS` is set. */
const SLOW_MS = Number(process.env.SCALE_DEBUG_SLOW_MS ?? 0);
const index = Number(process.env.SCALE_GEN_INDEX ?? 0);
const source = (i: number): string => `127.0.${index + 1}.${1 + (i % ADDRESSES)}`;

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
let conns: Conn[] = [];
let phase = { messages: 0, counts: new Uint32Array(0), latencies: [] as number[], keepLatencies: false, latencyEvery: 1, received: 0, firstAt: 0, lastAt: 0 };

function onData(conn: Conn, p: Payload): void {
  const at = nowMs();
  phase.received++;
  conn.received++;
  if (phase.firstAt === 0) phase.firstAt = at;
  phase.lastAt = at;
  if (typeof p?.n === 'number' && p.n >= 0 && p.n < phase.messages) phase.counts[p.n]!++;
  if (phase.keepLatencies && typeof p?.t === 'number' && phase.received % phase.latencyEvery === 0) {
    phase.latencies.push(at - p.t);
    if (SLOW_MS > 0 && at - p.t > SLOW_MS) console.log(`slow ${p.n} ${conn.user} sent ${p.t.toFixed(1)} +${(at - p.t).toFixed(1)} ms`);
  }
}

const sorted = (xs: number[]): number[] => Float64Array.from(xs).sort().reduce<number[]>((out, v) => (out.push(Math.round(v * 1000) / 1000), out), []);

/** Opens `count` connections at `rate`/s (start times spread evenly; 0: as fast as the window allows), at most `concurrency` pending at once. */
async function connect(c: ConnectCommand): Promise<ConnectReply> {
  const began = nowMs();
  loopDelay.reset();
  const latencies: number[] = [];
  let failed = 0;
  let firstError: string | undefined;
  let openedAtSum = 0;
  let pending = 0;
  // Woken when a connection settles, so that a full window refills at once (each open is bounded by CONNECT_TIMEOUT_MS).
  let wake: (() => void) | undefined;
  const concurrency = Math.max(1, c.concurrency);
  const opening: Promise<void>[] = [];
  for (let i = 0; i < c.count; i++) {
    const due = began + (c.rate > 0 ? (i * 1000) / c.rate : 0);
    while (nowMs() < due) await sleep(Math.max(0, Math.min(5, due - nowMs())));
    while (pending >= concurrency) await new Promise<void>((resolve) => (wake = resolve));
    const conn = makeConn({ kind: c.kind, port: c.ports[i % c.ports.length]!, user: `u${c.first + i}`, join: c.join, localAddress: source(i), onData });
    pending++;
    opening.push(
      conn.open().then(
        (ms) => {
          latencies.push(ms);
          openedAtSum += nowMs();
          conns.push(conn);
        },
        (err: Error) => {
          failed++;
          firstError ??= err.message;
          conn.close();
        },
      ).finally(() => {
        pending--;
        wake?.();
        wake = undefined;
      }),
    );
  }
  await Promise.all(opening);
  return { opened: latencies.length, failed, firstError, seconds: (nowMs() - began) / 1000, latencies: sorted(latencies), openedAtSum, loopDelayMaxMs: loopDelay.max / 1e6 };
}

function collect(): CollectReply {
  let off = 0;
  for (const c of conns) if (c.received !== phase.messages) off++;
  return { received: phase.received, counts: Array.from(phase.counts), connectionsOff: off, latencies: sorted(phase.latencies), loopDelayMaxMs: loopDelay.max / 1e6, firstAt: phase.firstAt, lastAt: phase.lastAt };
}

/** Sends `count` targeted messages at `rate`/s over the publishing connections, round-robin; never more than one tick's backlog at once. */
async function publish(c: PublishCommand): Promise<PublishReply> {
  const pubs: Publisher[] = [];
  try {
    // Over HTTP one client per port is enough: it keeps its own pool of requests (or batches) under way.
    const perPort = c.via === 'ws' ? c.perPort : 1;
    for (const [p, port] of c.ports.entries()) for (let k = 0; k < perPort; k++) pubs.push(await openPublisher(c, port, `pub${index}-${p}-${k}`, source(pubs.length)));
    const began = nowMs();
    let n = 0;
    let behindTicks = 0;
    const deadline = began + (c.count / c.rate) * 1000 * 3 + 10_000;
    while (n < c.count && nowMs() < deadline) {
      const due = Math.min(c.count, Math.floor(((nowMs() - began) / 1000) * c.rate) + 1);
      if (due - n > c.rate / 100 + 10) behindTicks++;
      while (n < due) {
        const pub = pubs[n % pubs.length]!;
        if (pub.buffered() > MAX_BUFFERED_BYTES) break;
        pub.send(n, `u${(n * 7919) % c.users}`, { n, t: nowMs() });
        n++;
      }
      await sleep(1);
    }
    const seconds = (nowMs() - began) / 1000;
    const replyDeadline = nowMs() + REPLY_WAIT_MS;
    while (pubs.some((p) => p.pending() > 0) && nowMs() < replyDeadline) await sleep(20);
    const failed = pubs.reduce((s, p) => s + p.failed() + p.pending(), 0);
    return { sent: n, failed, firstError: pubs.map((p) => p.firstError()).find((e) => e !== undefined), seconds, achievedRate: n / seconds, behindTicks };
  } finally {
    for (const p of pubs) p.close();
  }
}

function drop(): DropReply {
  let withoutPosition = 0;
  for (const c of conns) if (!c.drop()) withoutPosition++;
  return { dropped: conns.length, withoutPosition };
}

/** Rejoins every connection (at most `concurrency` at once) and waits until each has `missed` payloads, or the timeout. */
async function rejoin(c: RejoinCommand): Promise<RejoinReply> {
  const began = nowMs();
  let failed = 0;
  let notRecovered = 0;
  let firstError: string | undefined;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < conns.length) {
      const conn = conns[next++]!;
      try {
        if (!(await conn.rejoin())) notRecovered++;
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(c.concurrency, conns.length) }, worker));
  const deadline = began + c.timeoutMs;
  while (conns.some((x) => x.received < c.missed) && nowMs() < deadline) await sleep(5);
  const complete = conns.filter((x) => x.received >= c.missed).length;
  const seconds = ((complete === conns.length ? phase.lastAt : nowMs()) - began) / 1000;
  return { rejoined: conns.length - failed, failed, firstError, notRecovered, complete, replayed: phase.received, seconds: Math.max(seconds, 0) };
}

async function handle(command: Command): Promise<ReplyOf[Command['type']]> {
  switch (command.type) {
    case 'connect':
      return connect(command);
    case 'expect':
      phase = { messages: command.messages, counts: new Uint32Array(command.messages), latencies: [], keepLatencies: command.latencies, latencyEvery: Math.max(1, command.latencyEvery ?? 1), received: 0, firstAt: 0, lastAt: 0 };
      for (const c of conns) c.received = 0;
      loopDelay.reset();
      return { ok: true };
    case 'collect':
      return collect();
    case 'count':
      return { received: phase.received };
    case 'close': {
      const closed = conns.length;
      for (const c of conns) c.close();
      conns = [];
      return { closed };
    }
    case 'publish':
      return publish(command);
    case 'drop':
      return drop();
    case 'rejoin':
      return rejoin(command);
  }
}

serveWorker(handle);
