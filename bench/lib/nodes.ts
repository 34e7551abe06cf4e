// Switchboard node processes (`bin/switchboard.js start`, so dist/ must be
// built): start one on a free port, agree on membership, and sum
// Prometheus metrics.
import { freePort } from '../../test/helpers/ports.js';
import { getJson } from './http.js';
import { BIN } from './paths.js';
import { type Server, spawnServer, type SpawnOptions, stopProcess } from './procs.js';
import { sleep } from './wait.js';

const MEMBERSHIP_TIMEOUT_MS = 15_000;

export interface BenchNode extends Server {
  id: string;
}

/** The arguments of `bin/switchboard.js start` for node `id` on `port`, after `args` (config, broker, limits…); `bin` is another checkout's to run that one. */
export const nodeArgs = (id: string, port: number, args: string[], bin = BIN): string[] => [bin, 'start', ...args, '--port', String(port), '--host', '127.0.0.1', '--node-id', id];

/** Starts node `id` with `args` on a free port and waits until it is ready. */
export async function spawnNode(id: string, args: string[], opts: SpawnOptions = {}): Promise<BenchNode> {
  const port = await freePort();
  return { id, ...(await spawnServer(`node ${id}`, port, nodeArgs(id, port, args), opts)) };
}

/** SIGTERM (the node drains), SIGKILL if it lingers. */
export const stopNode = (node: Server): Promise<void> => stopProcess(node.proc);

/** Until every node lists exactly `ids` as the live cluster. */
export async function waitMembership(nodes: BenchNode[], ids: string[]): Promise<void> {
  const want = [...ids].sort().join(',');
  const deadline = Date.now() + MEMBERSHIP_TIMEOUT_MS;
  let last = '';
  for (;;) {
    const views = await Promise.all(
      nodes.map(async (n) => (await getJson<{ nodes: Array<{ id: string }> }>(n.port, '/api/nodes')).nodes.map((x) => x.id).sort().join(',')),
    );
    if (views.every((v) => v === want)) return;
    last = views.join(' | ');
    if (Date.now() > deadline) throw new Error(`membership ${want} not agreed within ${MEMBERSHIP_TIMEOUT_MS} ms: ${last}`);
    await sleep(100);
  }
}

/** Sum of a Prometheus metric's samples whose labels contain `labels` (each of them, when several). */
export function metric(text: string, name: string, labels: string | string[] = ''): number {
  const parts = typeof labels === 'string' ? [labels] : labels;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    if (!parts.every((p) => line.includes(p))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
