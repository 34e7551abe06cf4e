/**
 * Users who come and go: each one, in its own loop, is away for a while,
 * then opens one session (or two, on different nodes), stays, and leaves.
 * Raw protocol clients straight to the nodes, so that the test chooses the
 * node and nothing reconnects behind its back. Every session is written
 * down with the times that bound its entry at the store (see
 * `presence-events.ts`): what the client saw, and the faults the scenario
 * marks (`killed`, `draining`) before making them.
 */
import { RawClient, type Closed } from '../raw-client.js';
import type { NodeProcess } from '../node-process.js';
import { sleep } from '../wait.js';
import type { SessionSpan } from './presence-events.js';

export interface VisitorsOptions {
  users: readonly string[];
  /** Seeded numbers in [0, 1). */
  random: () => number;
  /** The nodes a new session may go to now. */
  nodes: () => readonly NodeProcess[];
  token: (user: string) => Promise<string>;
  /** Users who open two sessions at once on some visits. */
  twoSessions: (user: string) => boolean;
  /** Pause before each of `user`'s visits, ms: [least, most]. */
  awayMs: (user: string) => readonly [number, number];
  /** Length of a visit, ms: [least, most]. */
  stayMs: readonly [number, number];
  /** No visit starts after this time (ms since the epoch; `stopAt` brings it forward)… */
  until: number;
  /** …nor past this many per user. */
  maxVisits: number;
  /** How long after its node died a session's entry may still be there, when `seenDead` was not called (the detection time). */
  detectionMs: number;
  /** How late the store may apply an open or a close beyond what the client saw. */
  slackMs: number;
}

/** Why a session ended. */
export type Ending = 'left' | 'killed' | 'drained' | 'cut' | 'unexpected';

interface Visit {
  user: string;
  node: NodeProcess;
  connectAt: number;
  /** When the welcome arrived; undefined if it never did. */
  welcomeAt?: number;
  client?: RawClient;
  /** The test began closing it. */
  leaveAt?: number;
  ended?: { at: number; how: Ending; closed: Closed };
}

export class Visitors {
  readonly visits: Visit[] = [];
  /** The fault of each node process, and for a kill, when the others were seen to have declared it dead. */
  private readonly faults = new Map<NodeProcess, { kind: 'kill' | 'term'; at: number; deadAt?: number }>();
  private loops: Array<Promise<void>> = [];
  /** Connects refused before any socket opened (node down or draining): no entry, no span. */
  refused = 0;
  /** Visits with two sessions open at once (on two nodes). */
  doubled = 0;
  private until: number;

  constructor(private readonly opts: VisitorsOptions) {
    this.until = opts.until;
  }

  /** Start no visit after `at` (ms since the epoch). */
  stopAt(at: number): void {
    this.until = Math.min(this.until, at);
  }

  /** Start every user's loop. */
  start(): void {
    this.loops = this.opts.users.map((u) => this.loop(u));
  }

  /** Mark `node` as about to be killed (SIGKILL): call before killing it. */
  killed(node: NodeProcess): void {
    this.faults.set(node, { kind: 'kill', at: Date.now() });
  }

  /** Mark the killed `node` as declared dead by the others (they drop its entries as they declare it). */
  seenDead(node: NodeProcess): void {
    const fault = this.faults.get(node);
    if (fault?.kind === 'kill') fault.deadAt = Date.now();
  }

  /** Mark `node` as about to be drained (SIGTERM): call before signalling it. */
  draining(node: NodeProcess): void {
    this.faults.set(node, { kind: 'term', at: Date.now() });
  }

  /** Wait for every loop to end (each ends at `until` plus one visit), then close what is still open. */
  async finish(): Promise<void> {
    await Promise.all(this.loops);
    await Promise.all(this.visits.map((v) => this.leave(v)));
  }

  /** Sessions open now. */
  get open(): number {
    return this.visits.filter((v) => v.client && !v.ended).length;
  }

  /** How many sessions ended each way. */
  endings(): Record<Ending, number> {
    const out: Record<Ending, number> = { left: 0, killed: 0, drained: 0, cut: 0, unexpected: 0 };
    for (const v of this.visits) if (v.ended) out[v.ended.how]++;
    return out;
  }

  /** The close codes and reasons of the sessions that ended unexpectedly, with how many of each. */
  unexpected(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const v of this.visits) {
      if (v.ended?.how !== 'unexpected') continue;
      const key = `${v.ended.closed.code} ${v.ended.closed.reason}`;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  /** The sessions as the verdict needs them. */
  spans(): SessionSpan[] {
    const { detectionMs, slackMs } = this.opts;
    return this.visits.map((v) => {
      const fault = this.faults.get(v.node);
      const end = v.ended ?? { at: Date.now(), how: 'left' as const, closed: { code: 0, reason: '' } };
      // The test began closing it, or the node began going (whichever came first).
      const sureUntil = Math.min(v.leaveAt ?? Infinity, fault?.at ?? Infinity, end.at);
      // A close the node may not have applied before it died: the entry goes when the others see the node dead, or when it starts again.
      const lost = fault?.kind === 'kill' && (v.leaveAt ?? end.at) >= fault.at - slackMs;
      const mayUntil = lost ? Math.max(end.at, fault.deadAt ?? fault.at + detectionMs) : end.at;
      return {
        user: v.user,
        ...(v.welcomeAt !== undefined && end.how !== 'cut' ? { sure: { from: v.welcomeAt, until: sureUntil } } : {}),
        may: { from: v.connectAt, until: mayUntil + slackMs },
      };
    });
  }

  private async loop(user: string): Promise<void> {
    const { random, awayMs, stayMs, maxVisits } = this.opts;
    const between = ([a, b]: readonly [number, number]): number => a + random() * (b - a);
    for (let n = 0; n < maxVisits; n++) {
      // Pause, not a wait: the user is away.
      await sleep(between(awayMs(user)));
      if (Date.now() >= this.until) return;
      const count = this.opts.twoSessions(user) && random() < 0.6 ? 2 : 1;
      const mine = await Promise.all(distinct(this.opts.nodes(), count, random).map((node) => this.visit(user, node)));
      if (mine.filter((m) => m?.welcomeAt !== undefined).length === 2) this.doubled++;
      // Pause, not a wait: the user stays.
      await sleep(between(stayMs));
      for (const v of mine) if (v) await this.leave(v);
    }
  }

  /** Open a session of `user` on `node`; undefined when the node refused it before any socket opened. */
  private async visit(user: string, node: NodeProcess): Promise<Visit | undefined> {
    const token = await this.opts.token(user);
    const v: Visit = { user, node, connectAt: Date.now() };
    let client: RawClient;
    try {
      client = await RawClient.open(node.ws(`token=${encodeURIComponent(token)}`));
    } catch {
      this.refused++;
      return undefined;
    }
    this.visits.push(v);
    v.client = client;
    client.answerPings();
    void client.closed.then((closed) => {
      const fault = this.faults.get(node);
      const left = v.leaveAt !== undefined && (fault === undefined || v.leaveAt < fault.at);
      const how: Ending =
        v.welcomeAt === undefined ? 'cut'
        : left ? 'left'
        : fault?.kind === 'kill' ? 'killed'
        : fault?.kind === 'term' && (closed.code === 4100 || v.leaveAt !== undefined) ? 'drained'
        : 'unexpected';
      v.ended = { at: Date.now(), how, closed };
    });
    const welcome = client.next((f) => f.type === 'welcome', 5000).then(() => true, () => false);
    if (await Promise.race([welcome, client.closed.then(() => false)])) v.welcomeAt = Date.now();
    else await client.close();
    return v;
  }

  private async leave(v: Visit): Promise<void> {
    if (!v.client || v.ended) return;
    v.leaveAt ??= Date.now();
    await v.client.close();
  }
}

/** `count` different items of `list` (fewer if it is shorter), drawn with `random` (a partial Fisher–Yates shuffle). */
function distinct<T>(list: readonly T[], count: number, random: () => number): T[] {
  const pool = [...list];
  const n = Math.min(count, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, n);
}
