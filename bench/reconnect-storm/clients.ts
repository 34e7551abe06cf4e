// The parent's side of the client processes: the bundled benchmark forked
// with CHILD_FLAG (lib/workers.ts), every answer awaited with a bound.
import { forkWorker, type Worker } from '../lib/workers.js';
import { CHILD_FLAG, type ReplyOf, type ToChild } from './protocol.js';

export type ClientProcess = Worker<ToChild, ReplyOf>;

export function startClientProcess(): ClientProcess {
  const script = process.argv[1];
  if (!script) throw new Error('cannot find the bundled benchmark to fork');
  return forkWorker<ToChild, ReplyOf>('client process', script, { args: [CHILD_FLAG] });
}

/** Asks the process to close its clients, then ends it (SIGKILL if it lingers). */
export async function stopClientProcess(c: ClientProcess): Promise<void> {
  await c.ask({ type: 'close' }, 5_000).catch(() => undefined);
  await c.stop();
}
