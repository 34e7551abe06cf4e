// The coordinator's side of the load generators: forks them (each its own
// process, under the open-file limit, with its own source addresses), sends
// one command to each and waits for every reply, bounded in time. Results
// come back aggregated per process (sorted samples, counts), never one IPC
// message per delivery.
import { join } from 'node:path';
import { OUT } from '../lib/paths.js';
import { forkWorker, type Worker } from '../lib/workers.js';
import type { Command, ReplyOf } from './protocol.js';

/** Connections per generator at most: the per-process open-file limit is 20000. */
export const MAX_SOCKETS_PER_GEN = 15_000;
export const LOADGEN = join(OUT, 'scale-loadgen.mjs');

export type Gen = Worker<Command, ReplyOf> & { index: number };

function spawnGen(index: number): Gen {
  const w = forkWorker<Command, ReplyOf>(`generator ${index}`, LOADGEN, { env: { SCALE_GEN_INDEX: String(index) }, execArgv: ['--max-old-space-size=4096'] });
  return Object.assign(w, { index });
}

/** Load generators 0 … count-1; the one at `count` only publishes, so its work never slows the receivers. */
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

  async stop(): Promise<void> {
    await Promise.all([...this.gens, this.publisher].map((g) => g.stop()));
  }
}

/** Splits `total` into `parts` near-equal shares: the first `total % parts` get one more. */
export function shares(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}
