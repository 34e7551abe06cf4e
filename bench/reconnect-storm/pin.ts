// `--pin`: the two survivors share CPU 1 and everything else (node A, the
// client processes, Redis, this process) runs on CPU 0. On a 2-core machine
// the clients otherwise take CPU from the very nodes they storm, which
// slows the storm down; pinned, each survivor has half a core, as a node
// already busy with clients of its own would, and the storm is not.
import { execFileSync } from 'node:child_process';

/** Pin every thread of `pid` to `cpu` (taskset). */
export function pin(pid: number | undefined, cpu: number): void {
  if (pid === undefined) throw new Error('cannot pin a process without a pid');
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}
