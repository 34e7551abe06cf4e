// The coordinator's side of the load generators: forks them (each its own
// process, under the open-file limit, with its own source addresses), sends
// one command to each and waits for every reply, bounded in time. Results
// come back aggregated per process (sorted samples, counts), never one IPC
// message per delivery.
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../routing/settings.js';
import type { Command, ReplyOf, Request, Response } from './protocol.js';

/** Connections per generator at most: the per-process open-file limit is 20000. */
export const MAX_SOCKETS_PER_GEN = 15_000;
export const LOADGEN = join(ROOT, '.bench-out', 'scale-loadgen.mjs');

export interface Gen {
  index: number;
  proc: ChildProcess;
  ask<C extends Command>(command: C, timeoutMs: number): Promise<ReplyOf[C['type']]>;
}

const live = new Set<ChildProcess>();

export function killGens(): void {
  for (const p of live) p.kill('SIGKILL');
  live.clear();
}

function spawnGen(index: number): Gen {
  const proc = fork(LOADGEN, [], { env: { ...process.env, SCALE_GEN_INDEX: String(index) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let seq = 0;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  proc.on('message', (m: Response) => {
    const w = waiting.get(m.seq);
    if (!w) return;
    waiting.delete(m.seq);
    if (m.ok) w.resolve(m.reply);
    else w.reject(new Error(`generator ${index}: ${m.error}`));
  });
  proc.once('exit', (code, signal) => {
    for (const w of waiting.values()) w.reject(new Error(`generator ${index} exited (${code ?? signal})`));
    waiting.clear();
  });
  const ask = <C extends Command>(command: C, timeoutMs: number): Promise<ReplyOf[C['type']]> =>
    new Promise((resolve, reject) => {
      const s = ++seq;
      const timer = setTimeout(() => {
        waiting.delete(s);
        reject(new Error(`generator ${index}: no answer to ${command.type} in ${timeoutMs} ms`));
      }, timeoutMs);
      waiting.set(s, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as ReplyOf[C['type']]);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      proc.send({ seq: s, command } satisfies Request);
    });
  return { index, proc, ask };
}

/** Load generators 0 … count-1; the one at `count` (if `publisher`) only publishes, so its work never slows the receivers. */
export class Fleet {
  readonly gens: Gen[];
  readonly publisher: Gen;

  constructor(count: number) {
    this.gens = Array.from({ length: count }, (_, i) => spawnGen(i));
    this.publisher = spawnGen(count);
  }

  /** The same command, shaped per generator by `make(gen index)`, to every receiving generator at once. */
  all<C extends Command>(make: (i: number) => C, timeoutMs: number): Promise<ReplyOf[C['type']][]> {
    return Promise.all(this.gens.map((g) => g.ask(make(g.index), timeoutMs)));
  }

  stop(): void {
    for (const g of [...this.gens, this.publisher]) g.proc.disconnect();
  }
}

/** Splits `total` into `parts` near-equal shares: the first `total % parts` get one more. */
export function shares(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

/** Sorted merge of already-sorted sample arrays. */
export function merged(lists: number[][]): Float64Array {
  const out = new Float64Array(lists.reduce((s, l) => s + l.length, 0));
  let k = 0;
  for (const l of lists) for (const v of l) out[k++] = v;
  return out.sort();
}
