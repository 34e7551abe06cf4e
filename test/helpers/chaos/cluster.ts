/**
 * The system under test of the chaos suite: a private redis-server, three
 * Switchboard node processes over it, and the shipped deploy/haproxy.cfg in
 * front of them. Clients and the publisher only ever talk to HAProxy. Every
 * process is killed by `stop()` and, should the test process die first, by
 * children.ts.
 */
import { track } from '../children.js';
import { startHaproxy, type Haproxy } from '../haproxy.js';
import { startNodeProcess, type NodeProcess } from '../node-process.js';
import { startRedis, type RedisProcess } from '../redis-server.js';
import { API_KEY, SECRET } from './auth.js';
import { metric } from '../metrics.js';

export interface ChaosClusterOptions {
  /** Node id prefix, for logs: `<name>-1`, `<name>-2`… */
  name: string;
  /** Redis with an AOF fsynced on every write (survives SIGKILL). Default false. */
  persistence?: boolean;
  /** Flags added to every node's command line (after the common ones, so they win). */
  nodeArgs?: string[];
}

/**
 * Flags every node gets. Timers are short so that faults are noticed within
 * the scenario's time: cluster heartbeat every second and dead after 3
 * missed ones; the server pings a client after 1 quiet second (clients add
 * their own `heartbeatGrace`); presence entries live 3 s; a SIGTERM drain
 * gives clients 5 s.
 */
function commonArgs(redisUrl: string): string[] {
  return [
    '--broker', redisUrl,
    '--secret', SECRET,
    '--api-key', API_KEY,
    '--heartbeat', '1',
    '--dead-after-beats', '3',
    '--ping', '1',
    '--pong-timeout', '2',
    '--drain-timeout', '5',
  ];
}

export class ChaosCluster {
  private constructor(
    readonly redis: RedisProcess,
    /** The current process of each node slot (a restart replaces it). */
    readonly nodes: NodeProcess[],
    readonly lb: Haproxy,
    private readonly ids: string[],
    private readonly args: string[],
  ) {}

  static async start(opts: ChaosClusterOptions): Promise<ChaosCluster> {
    const redis = await startRedis({ persistence: opts.persistence ?? false });
    const args = [...commonArgs(redis.url), ...(opts.nodeArgs ?? [])];
    const ids = [1, 2, 3].map((i) => `${opts.name}-${i}`);
    const nodes: NodeProcess[] = [];
    try {
      for (const id of ids) {
        const node = await startNodeProcess(id, args);
        track(node.proc);
        nodes.push(node);
      }
      const lb = await startHaproxy(nodes.map((n) => n.port));
      return new ChaosCluster(redis, nodes, lb, ids, args);
    } catch (err) {
      await Promise.all(nodes.map((n) => n.kill()));
      await redis.kill();
      throw err;
    }
  }

  /** The WebSocket endpoint, through HAProxy. */
  get wsUrl(): string {
    return `${this.lb.url.replace('http:', 'ws:')}/ws`;
  }

  /** The server API base, through HAProxy. */
  get apiUrl(): string {
    return this.lb.url;
  }

  /** The slot of the node with this id. */
  indexOf(nodeId: string): number {
    return this.ids.indexOf(nodeId);
  }

  /** HAProxy's name for the server of slot `i`. */
  serverName(i: number): string {
    return `node${i + 1}`;
  }

  /**
   * Start slot `i` again, same id and port (where HAProxy expects it), wait
   * until it is ready and HAProxy has it back in rotation.
   */
  async restart(i: number): Promise<NodeProcess> {
    const old = this.nodes[i]!;
    const node = await startNodeProcess(this.ids[i]!, this.args, {}, old.port);
    track(node.proc);
    this.nodes[i] = node;
    await this.lb.waitServer(this.serverName(i), 'UP', 15_000);
    return node;
  }

  /** SIGSTOP: the process stays, holds its sockets, and answers nothing. */
  freeze(i: number): void {
    this.nodes[i]!.proc.kill('SIGSTOP');
  }

  /** SIGCONT after `freeze`. */
  thaw(i: number): void {
    this.nodes[i]!.proc.kill('SIGCONT');
  }

  /**
   * The sum over the running nodes of a Prometheus counter or gauge whose
   * labels include `labels` (e.g. `switchboard_disconnects_total`, `{code: '4101'}`).
   */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    let sum = 0;
    for (const node of this.nodes) {
      if (node.proc.exitCode !== null || node.proc.signalCode !== null) continue;
      sum += await metric(node.url('/metrics'), name, labels);
    }
    return sum;
  }

  /** Kill everything (SIGKILL, which also ends a frozen node), HAProxy first. */
  async stop(): Promise<void> {
    await this.lb.stop();
    await Promise.all(this.nodes.map((n) => n.kill()));
    await this.redis.kill();
  }
}
