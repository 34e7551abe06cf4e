// The parent's side of the client processes: fork the bundled benchmark
// with CHILD_FLAG, one request at a time, every answer awaited with a bound.
import { fork, type ChildProcess } from 'node:child_process';
import { CHILD_FLAG, type FromChild, type ToChild } from './protocol.js';

type Answer<T extends FromChild['type']> = Extract<FromChild, { type: T }>;

const running = new Set<ChildProcess>();

/** SIGKILL every client process still running (on exit or failure). */
export function killAllClients(): void {
  for (const p of running) p.kill('SIGKILL');
  running.clear();
}

export class ClientProcess {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly proc: ChildProcess) {}

  static start(): ClientProcess {
    const script = process.argv[1];
    if (!script) throw new Error('cannot find the bundled benchmark to fork');
    const proc = fork(script, [CHILD_FLAG], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    running.add(proc);
    proc.once('exit', () => running.delete(proc));
    return new ClientProcess(proc);
  }

  /** Send `m`; resolves with the answer of type `expect`, rejects on `failed`, exit or after `timeoutMs`. */
  call<T extends FromChild['type']>(m: ToChild, expect: T, timeoutMs: number): Promise<Answer<T>> {
    const next = this.queue.then(
      () =>
        new Promise<Answer<T>>((resolve, reject) => {
          const done = (err: Error | undefined, answer?: FromChild): void => {
            clearTimeout(timer);
            this.proc.off('message', onMessage);
            this.proc.off('exit', onExit);
            if (err) reject(err);
            else if (answer?.type === 'failed') reject(new Error(`client process: ${answer.message}`));
            else if (answer?.type !== expect) reject(new Error(`client process answered ${answer?.type} to ${m.type}`));
            else resolve(answer as Answer<T>);
          };
          const onMessage = (a: FromChild): void => done(undefined, a);
          const onExit = (code: number | null): void => done(new Error(`client process exited (${code}) during ${m.type}`));
          const timer = setTimeout(() => done(new Error(`client process: no answer to ${m.type} within ${timeoutMs} ms`)), timeoutMs);
          this.proc.on('message', onMessage);
          this.proc.once('exit', onExit);
          this.proc.send(m);
        }),
    );
    this.queue = next.catch(() => undefined);
    return next;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Ask the fleet to close, then end the process (SIGKILL if it lingers). */
  async stop(): Promise<void> {
    try {
      await this.call({ type: 'close' }, 'closed', 5_000);
    } catch {
      // it is going away regardless
    }
    if (this.proc.connected) this.proc.disconnect();
    const exited = new Promise<void>((r) => (this.proc.exitCode !== null ? r() : this.proc.once('exit', () => r())));
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  }
}
