/**
 * The frame every chaos scenario shares: start the cluster behind HAProxy,
 * connect one SDK client per user, publish to every user without pause,
 * let the scenario make its faults (`fault()` starts the recovery clock),
 * then `finish()`: stop publishing, wait (bounded) until everything
 * acknowledged is delivered or reported lost, and account.
 */
import { randomUUID } from 'node:crypto';
import { vi } from 'vitest';
import { ChaosClient, allConnected, type ChaosClientOptions } from './clients.js';
import { ChaosCluster, type ChaosClusterOptions } from './cluster.js';
import { Ledger } from './ledger.js';
import type { PacedPublisher } from './paced-publisher.js';
import { Publisher } from './publisher.js';
import { RecoveryClock } from './recovery.js';
import { figureOf, report, type ScenarioFigure } from './report.js';
import { sleep } from '../wait.js';

export interface ScenarioOptions extends ChaosClusterOptions {
  /** Users with a connected client each. Default 24. */
  users?: number;
  /** Users who are published to but have no client (they come later, if at all). */
  offline?: string[];
  /** Pause between one user's messages, ms. Default 150 (24 users: about 160 messages/s). */
  intervalMs?: number;
  /** Per-attempt timeout of the publisher, ms. Default 2000. */
  publishTimeoutMs?: number;
  /** Padding bytes per message to a user. */
  padding?: (user: string) => number;
  /**
   * How messages enter the system: a publisher for `users` (the online and
   * offline ones) writing to `ledger`, not yet started. Default: the HTTP
   * publisher through the load balancer, with the three options above.
   */
  publisher?: (ledger: Ledger, users: readonly string[]) => PacedPublisher;
  /** Options of each online user's client. */
  clientOptions?: (user: string) => ChaosClientOptions;
}

/** A message acknowledged less than this long ago may still be on its way: not yet "missing". */
const LAG_MS = 300;
/** While publishing, healthy means a publish was acknowledged within this long. */
const ACK_GAP_MS = 500;
/** How long `finish` waits for stragglers after publishing stops. */
const DRAIN_MS = 20_000;
/** After everything arrived, how long to keep listening for late duplicates. */
const SETTLE_MS = 1000;

export class ChaosRun {
  readonly ledger = new Ledger();
  readonly clients: ChaosClient[] = [];
  readonly users: string[];
  readonly clock: RecoveryClock;
  readonly startedAt = Date.now();
  publisher: PacedPublisher | undefined;
  private publishing = false;
  /** Clients the recovery clock ignores (added after the faults, e.g. users coming back). */
  private readonly unwatched = new Set<ChaosClient>();

  private constructor(
    readonly name: string,
    readonly cluster: ChaosCluster,
    users: number,
  ) {
    this.users = Array.from({ length: users }, (_, i) => `${name}-u${i}`);
    this.clock = new RecoveryClock(() => this.problem());
  }

  /** Cluster up, every client connected, publisher running. */
  static async start(opts: ScenarioOptions): Promise<ChaosRun> {
    const cluster = await ChaosCluster.start(opts);
    const run = new ChaosRun(opts.name, cluster, opts.users ?? 24);
    try {
      for (const user of run.users) run.addClient(user, opts.clientOptions?.(user) ?? {});
      await allConnected(run.clients);
      const users = [...run.users, ...(opts.offline ?? [])];
      const publisher =
        opts.publisher?.(run.ledger, users) ??
        new Publisher(run.ledger, {
          url: cluster.apiUrl,
          users,
          intervalMs: opts.intervalMs ?? 150,
          timeoutMs: opts.publishTimeoutMs ?? 2000,
          runId: randomUUID(),
          ...(opts.padding ? { padding: opts.padding } : {}),
        });
      run.publisher = publisher.start();
      run.publishing = true;
    } catch (err) {
      await run.close();
      throw err;
    }
    return run;
  }

  /**
   * A new SDK client for `user`, connecting through the load balancer (not
   * awaited). With `watched: false` the recovery clock does not wait for it.
   */
  addClient(user: string, opts: ChaosClientOptions = {}, { watched = true } = {}): ChaosClient {
    const c = new ChaosClient(user, this.cluster.wsUrl, this.ledger, opts);
    this.clients.push(c);
    if (!watched) this.unwatched.add(c);
    c.connect();
    return c;
  }

  /** Clients that are to be connected (not closed by the scenario). */
  private live(): ChaosClient[] {
    return this.clients.filter((c) => c.client.state !== 'disconnected');
  }

  /** The live clients the recovery clock waits for. */
  private watched(): ChaosClient[] {
    return this.live().filter((c) => !this.unwatched.has(c));
  }

  /**
   * What keeps the system from being healthy now, or undefined when it is:
   * every live client connected, nothing acknowledged more than `LAG_MS` ago
   * missing for the online users, and (while publishing) publishes being
   * acknowledged.
   */
  problem(): string | undefined {
    const now = Date.now();
    const down = this.watched().filter((c) => !c.connected).length;
    if (down > 0) return `${down} clients not connected`;
    const missing = this.ledger.missing(now - LAG_MS, this.users);
    if (missing > 0) return `${missing} messages missing`;
    const quiet = now - (this.publisher?.lastAckAt ?? 0);
    return this.publishing && quiet > ACK_GAP_MS ? `no publish acknowledged for ${quiet} ms` : undefined;
  }

  /**
   * A rolling restart under the traffic: each node in turn gets SIGTERM,
   * drains (its clients are closed with 4100 and reconnect elsewhere), is
   * started again on its port, and the traffic flows a second before the
   * next. Answers each node's exit code and how many clients it drained.
   */
  async rollingRestart(): Promise<{ exitCodes: Array<number | null>; drained: number[] }> {
    const exitCodes: Array<number | null> = [];
    const drained: number[] = [];
    for (let i = 0; i < this.cluster.nodes.length; i++) {
      const node = this.cluster.nodes[i]!;
      const onIt = this.clients.filter((c) => c.node === node.id);
      this.fault(`SIGTERM ${node.id}`);
      await node.stop(15_000);
      exitCodes.push(node.proc.exitCode);
      await vi.waitUntil(() => onIt.every((c) => c.connected && c.drops.some((d) => d.code === 4100)), { timeout: 15_000, interval: 25 });
      drained.push(onIt.length);
      await this.cluster.restart(i);
      // Pause, not a wait: traffic flows for a while between restarts.
      await sleep(1000);
    }
    return { exitCodes, drained };
  }

  /** Mark a fault: the recovery clock measures from now. */
  fault(label: string): void {
    this.clock.fault(label);
  }

  /** Stop publishing and wait (bounded) until every online user has everything or it is reported lost. */
  async stopPublishing(): Promise<void> {
    if (!this.publisher || !this.publishing) return;
    this.publishing = false;
    await this.publisher.stop();
    await vi
      .waitUntil(() => this.live().every((c) => c.connected) && this.ledger.missing(Infinity, this.users) === 0, { timeout: DRAIN_MS, interval: 50 })
      .catch(() => undefined); // what is still missing then is reported as lost
    // Pause, not a wait: listen this long for late duplicates.
    await sleep(SETTLE_MS);
  }

  /** Stop publishing, account, print and store the figure. */
  async finish(notes?: Record<string, number | string>): Promise<ScenarioFigure> {
    await this.stopPublishing();
    const faults = this.clock.stop();
    const figure = figureOf(this.name, this.ledger.figures(), faults, this.publisher!.stats, this.startedAt, notes);
    report(figure);
    return figure;
  }

  /** Problems found by the accounting, for assertion messages. */
  problems(): string {
    return this.ledger.figures().problems.join('\n');
  }

  async close(): Promise<void> {
    this.publishing = false;
    for (const c of this.clients) c.close();
    await this.publisher?.abort();
    await this.cluster.stop();
  }
}
