// Worker processes driven over IPC (load generators, client processes):
// the parent forks one and asks it commands, each answered once, matched
// by sequence number and bounded in time; the worker serves commands with
// `serveWorker` and exits when the parent goes.
import { type ChildProcess, fork } from 'node:child_process';
import { exited, track } from './procs.js';

/** A command names its kind in `type`; `R` maps each kind to its reply. */
type Command = { type: string };

interface Envelope<C> {
  seq: number;
  command: C;
}

type Answer<R> = { seq: number; ok: true; reply: R } | { seq: number; ok: false; error: string };

export interface Worker<C extends Command, R extends Record<C['type'], unknown>> {
  readonly proc: ChildProcess;
  /** Sends `command`; resolves with its reply, rejects on the worker's error, its exit, or after `timeoutMs`. */
  ask<K extends C>(command: K, timeoutMs: number): Promise<R[K['type']]>;
  /** Disconnects; SIGKILLs the worker if it has not exited within 3 s. */
  stop(): Promise<void>;
}

export interface ForkOptions {
  args?: string[];
  env?: Record<string, string>;
  execArgv?: string[];
}

/** Forks `script` as a tracked worker named `name` (for errors). */
export function forkWorker<C extends Command, R extends Record<C['type'], unknown>>(name: string, script: string, opts: ForkOptions = {}): Worker<C, R> {
  const proc = track(fork(script, opts.args ?? [], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: opts.execArgv ?? [] }));
  let seq = 0;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  proc.on('message', (m: Answer<unknown>) => {
    const w = waiting.get(m.seq);
    if (!w) return;
    waiting.delete(m.seq);
    if (m.ok) w.resolve(m.reply);
    else w.reject(new Error(`${name}: ${m.error}`));
  });
  proc.once('exit', (code, signal) => {
    for (const w of waiting.values()) w.reject(new Error(`${name} exited (${code ?? signal})`));
    waiting.clear();
  });
  const ask = <K extends C>(command: K, timeoutMs: number): Promise<R[K['type']]> =>
    new Promise((resolve, reject) => {
      const s = ++seq;
      const timer = setTimeout(() => {
        waiting.delete(s);
        reject(new Error(`${name}: no answer to ${command.type} in ${timeoutMs} ms`));
      }, timeoutMs);
      waiting.set(s, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as R[K['type']]);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      proc.send({ seq: s, command } satisfies Envelope<K>);
    });
  const stop = async (): Promise<void> => {
    if (proc.connected) proc.disconnect();
    if (!(await exited(proc, 3_000))) proc.kill('SIGKILL');
  };
  return { proc, ask, stop };
}

/** In a worker: answers each command with `handle`'s reply (or its error); exits when the parent disconnects. */
export function serveWorker<C extends Command>(handle: (command: C) => Promise<unknown>): void {
  process.on('message', (m: Envelope<C>) => {
    handle(m.command).then(
      (reply) => process.send?.({ seq: m.seq, ok: true, reply } satisfies Answer<unknown>),
      (err: unknown) => process.send?.({ seq: m.seq, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies Answer<unknown>),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
