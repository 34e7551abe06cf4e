/**
 * What nodes know of each other, kept once above the brokers: membership by
 * heartbeats (a node missing `deadAfterBeats` beats is dead), and requests
 * to every live node with a timeout that never waits for a node already
 * known to be dead. Brokers only carry the bytes (`sendControl`/`onControl`).
 *
 * A node's entries at the store (presence, registry) live while it does:
 * when a node dies or leaves, `onGone` drops them. A node declared dead
 * that beats again (it stalled, or lost the broker for longer than the
 * detection time) is told `swept` once its entries are gone, and puts its
 * own back (`onSwept`).
 */
import type { Logger } from 'pino';
import type { Broker } from '../brokers/broker.js';
import { ErrorCode, SwitchboardError, toErrorBody, type ErrorBody, type MemberFrame } from '../protocol/index.js';
import type { ClusterRequest, ControlBody, NodeInfo } from './messages.js';
import { ControlRejections } from './rejections.js';
import { ControlSeal } from './seal.js';
import { checkControl, type ControlRejectReason } from './validate.js';

export interface ClusterOptions {
  /** Milliseconds between heartbeats. */
  heartbeatMs: number;
  /** Missed heartbeats after which a node is dead. */
  deadAfterBeats: number;
  /** Cluster secrets (`--cluster-secret`): the first signs every control message, any verifies; none: unsigned (seal.ts). */
  secrets?: readonly string[];
}

export interface RequestOutcome {
  node: string;
  result?: unknown;
  error?: ErrorBody;
}

/** What a node does when the membership changes. */
export interface ClusterHooks {
  /** Called with the ids of the other live nodes whenever a node joins, leaves or is declared dead. */
  onMembers?(others: string[]): void;
  /** A node died or left: drop its entries. Resolves when they are gone (or could not be dropped). */
  onGone?(node: string): Promise<void>;
  /** This node was declared dead by another, which dropped its entries: put them back. */
  onSwept?(): void;
  /** Node `from` announced a `join` or `leave` of one of its sessions (`announce`). */
  onMember?(frame: MemberFrame, from: string): void;
  /** A control message was refused (malformed, invalid, or not signed with the cluster secret): count it. */
  onRejected?(reason: ControlRejectReason): void;
}

interface Member {
  info: NodeInfo;
  lastSeen: number;
}

interface Pending {
  waiting: Set<string>;
  outcomes: RequestOutcome[];
  done: () => void;
}

/** Requests waiting for answers at once; past it, new ones fail with `unavailable`. */
const MAX_PENDING = 1000;
/** Departed nodes remembered, in case one beats again. */
const MAX_GONE = 1000;

export class Cluster {
  private readonly members = new Map<string, Member>();
  private readonly pending = new Map<number, Pending>();
  /** Nodes this one saw die or leave, with the dropping of their entries. */
  private readonly gone = new Map<string, Promise<void>>();
  private nextId = 1;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly seal: ControlSeal;
  private readonly rejections: ControlRejections;

  constructor(
    readonly nodeId: string,
    private readonly broker: Broker,
    private readonly options: ClusterOptions,
    private readonly self: () => NodeInfo,
    private readonly serve: (request: ClusterRequest) => Promise<unknown>,
    private readonly log: Logger,
    private readonly hooks: ClusterHooks = {},
  ) {
    this.seal = new ControlSeal(options.secrets);
    this.rejections = new ControlRejections(log, (reason) => hooks.onRejected?.(reason));
  }

  start(): void {
    this.beat();
    this.timer = setInterval(() => this.beat(), this.options.heartbeatMs);
    this.timer.unref();
  }

  /** Tell the others this node is leaving, and stop beating. */
  async leave(): Promise<void> {
    this.stop();
    await this.send(null, { type: 'leave' }).catch(() => undefined);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const p of this.pending.values()) p.done();
  }

  /** Every live node, this one first. */
  nodes(): NodeInfo[] {
    this.expire(Date.now());
    return [this.self(), ...[...this.members.values()].map((m) => m.info)];
  }

  isAlive(node: string): boolean {
    this.expire(Date.now());
    return node === this.nodeId || this.members.has(node);
  }

  /** Handle a payload from `BrokerHandlers.onControl`: only a checked (and, with a secret, authentic) message is acted on. */
  receive(payload: string): void {
    const opened = this.seal.open(payload);
    const checked = opened.ok ? checkControl(opened.json) : opened;
    if (!checked.ok) return this.rejections.reject(checked.reason, checked.detail);
    const msg = checked.msg;
    if (msg.from === this.nodeId) return;
    switch (msg.type) {
      case 'heartbeat': {
        const known = this.members.has(msg.from);
        this.members.set(msg.from, { info: msg.info, lastSeen: Date.now() });
        if (!known) this.changed();
        if (!known) this.returned(msg.from);
        // A newcomer learns of this node now rather than at its next beat.
        if (!known && this.timer) {
          this.send(msg.from, { type: 'heartbeat', info: this.self() }).catch((err: unknown) =>
            this.log.debug({ err }, 'heartbeat not sent'),
          );
        }
        return;
      }
      case 'leave':
        this.forget(msg.from);
        return;
      case 'swept':
        this.log.warn({ by: msg.from }, 'this node was declared dead and its entries dropped: putting them back');
        this.hooks.onSwept?.();
        return;
      case 'request':
        void this.answer(msg.from, msg.id, msg.request);
        return;
      case 'member':
        this.hooks.onMember?.(msg.frame, msg.from);
        return;
      case 'response': {
        const p = this.pending.get(msg.id);
        if (!p || !p.waiting.delete(msg.from)) return;
        p.outcomes.push(msg.error ? { node: msg.from, error: msg.error } : { node: msg.from, result: msg.result });
        if (p.waiting.size === 0) p.done();
        return;
      }
    }
  }

  /** Tell every other node that a session joined or left a channel (see `ClusterHooks.onMember`). */
  announce(frame: MemberFrame): Promise<void> {
    return this.send(null, { type: 'member', frame });
  }

  /**
   * Run `request` on every live node (this one locally) and collect the
   * answers; nodes that do not answer within `timeoutMs`, or die meanwhile,
   * are reported with an `unavailable` error.
   */
  async requestAll(request: ClusterRequest, timeoutMs: number): Promise<RequestOutcome[]> {
    if (this.pending.size >= MAX_PENDING) throw new SwitchboardError(ErrorCode.Unavailable, 'too many cluster requests in flight');
    const id = this.nextId++;
    const others = this.nodes().map((n) => n.id).filter((n) => n !== this.nodeId);
    const local = this.run(request).then((r): RequestOutcome => ({ node: this.nodeId, ...r }));
    const remote = new Promise<RequestOutcome[]>((resolve) => {
      const outcomes: RequestOutcome[] = [];
      const waiting = new Set(others);
      const timer = setTimeout(() => entry.done(), timeoutMs);
      const entry: Pending = {
        waiting,
        outcomes,
        done: () => {
          clearTimeout(timer);
          this.pending.delete(id);
          for (const node of waiting) outcomes.push({ node, error: { code: ErrorCode.Unavailable, message: 'no answer' } });
          waiting.clear();
          resolve(outcomes);
        },
      };
      this.pending.set(id, entry);
      if (waiting.size === 0) entry.done();
    });
    if (others.length > 0) {
      await this.send(null, { type: 'request', id, request }).catch((err: unknown) => {
        this.log.warn({ err }, 'cluster request could not be sent');
        this.pending.get(id)?.done();
      });
    }
    return [await local, ...(await remote)];
  }

  private async answer(from: string, id: number, request: ClusterRequest): Promise<void> {
    const outcome = await this.run(request);
    await this.send(from, { type: 'response', id, ...outcome }).catch((err: unknown) =>
      this.log.warn({ err, to: from }, 'cluster response could not be sent'),
    );
  }

  private async run(request: ClusterRequest): Promise<{ result?: unknown; error?: ErrorBody }> {
    try {
      return { result: await this.serve(request) };
    } catch (err) {
      return { error: toErrorBody(err) };
    }
  }

  private send(to: string | null, body: ControlBody): Promise<void> {
    return this.broker.sendControl(to, this.seal.seal(JSON.stringify({ ...body, from: this.nodeId })));
  }

  private beat(): void {
    this.expire(Date.now());
    if (!this.broker.ready) return;
    this.send(null, { type: 'heartbeat', info: this.self() }).catch((err: unknown) =>
      this.log.debug({ err }, 'heartbeat not sent'),
    );
  }

  private changed(): void {
    try {
      this.hooks.onMembers?.([...this.members.keys()]);
    } catch (err) {
      this.log.error({ err }, 'membership change handler failed');
    }
  }

  private expire(now: number): void {
    const limit = this.options.heartbeatMs * this.options.deadAfterBeats;
    for (const [id, m] of this.members) {
      if (now - m.lastSeen > limit) {
        this.log.warn({ node: id }, 'node declared dead: no heartbeat');
        this.forget(id);
      }
    }
  }

  /** A node this one had seen go beats again: once its entries are dropped, tell it to put them back. */
  private returned(node: string): void {
    const dropping = this.gone.get(node);
    if (!dropping) return;
    this.gone.delete(node);
    void dropping.then(() =>
      this.send(node, { type: 'swept' }).catch((err: unknown) => this.log.warn({ err, to: node }, 'could not tell a returning node to put its entries back')),
    );
  }

  /** A dead or departed node: drop its entries, and stop waiting for its answers. */
  private forget(node: string): void {
    if (this.members.delete(node)) {
      this.changed();
      if (!this.gone.has(node)) {
        // Bounded: only a node that returns needs its entry, and ids of nodes that never do pile up.
        if (this.gone.size >= MAX_GONE) this.gone.delete(this.gone.keys().next().value!);
        this.gone.set(node, this.hooks.onGone?.(node).catch(() => undefined) ?? Promise.resolve());
      }
    }
    for (const p of [...this.pending.values()]) {
      if (p.waiting.delete(node)) {
        p.outcomes.push({ node, error: { code: ErrorCode.Unavailable, message: 'node left the cluster' } });
        if (p.waiting.size === 0) p.done();
      }
    }
  }
}
