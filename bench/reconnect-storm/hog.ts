// `--hog N`: N processes that spin on the CPU for the whole storm, as other
// work on a busy machine would (measured "other load" made unprotected
// storms far worse in practice; this makes that load reproducible).
import { spawn, type ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();

/** Start `n` busy loops; each ends after `maxMs` on its own, if nobody stops it before. */
export function startHogs(n: number, maxMs: number): () => void {
  const procs = Array.from({ length: n }, () => {
    const p = spawn(process.execPath, ['-e', `const end = Date.now() + ${maxMs}; while (Date.now() < end);`], { stdio: 'ignore' });
    running.add(p);
    p.once('exit', () => running.delete(p));
    return p;
  });
  return () => {
    for (const p of procs) p.kill('SIGKILL');
  };
}

export function killAllHogs(): void {
  for (const p of running) p.kill('SIGKILL');
  running.clear();
}
