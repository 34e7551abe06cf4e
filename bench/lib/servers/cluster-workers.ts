// `node:cluster` for the peer servers: with `workers` > 1 the primary forks
// that many workers sharing the port (round-robin, the Linux default) and
// answers nothing itself; each worker runs `serve`. A worker's `/readyz`
// says 200 only once every worker is listening (`allReady`), so a bench that
// waited for readiness never connects to a half-started set. Workers inherit
// the primary's `--expose-gc --import probe.mjs`, so each can be probed.
import cluster from 'node:cluster';

const READY = 'peers:ready';
const ALL_READY = 'peers:all-ready';

/** Runs `serve` in this process (one worker) or in `workers` forked workers; `serve` calls `ready()` once it can take connections. */
export function clustered(workers: number, serve: (ready: () => void, allReady: () => boolean) => void): void {
  if (workers <= 1) {
    let up = false;
    serve(() => (up = true), () => up);
    return;
  }
  if (cluster.isPrimary) {
    let ready = 0;
    for (let i = 0; i < workers; i++) {
      const w = cluster.fork();
      w.on('message', (m: unknown) => {
        if (m !== READY || ++ready < workers) return;
        for (const each of Object.values(cluster.workers ?? {})) each?.send(ALL_READY);
      });
    }
    process.on('SIGTERM', () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
      process.exit(0);
    });
    return;
  }
  let all = false;
  process.on('message', (m: unknown) => {
    if (m === ALL_READY) all = true;
  });
  serve(() => process.send?.(READY), () => all);
}
