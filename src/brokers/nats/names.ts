/**
 * Names of everything the NATS broker publishes to or stores, all under one
 * prefix `<p>` (default `sb`):
 *
 * - `<p>.r.<tok>`: the core subject that carries a channel's publications
 *   to nodes (the history streams republish onto it, and publications
 *   without history are published there directly);
 * - `<p>.h.<size>.<ttlMs>.<tok>`: a channel's subject in the history stream
 *   of its policy, `<p>_h_<size>_<ttlMs>`, whose position mirror is
 *   `<p>_p_<size>_<ttlMs>` (see `streams.ts`);
 * - `<p>.ctl` and `<p>.ctl.<tok(node)>`: control messages;
 * - the KV bucket `<p>_presence_v2`: `<tok(channel)>.<tok(node)>.<tok(session)>`
 *   (presence entries, the node in the key so that its entries can be found
 *   and dropped together) and `n.<tok(node)>` (the nodes that added entries;
 *   two tokens, so no entry key is one). `<p>_presence` is the bucket of
 *   earlier versions, keyed by channel and session, with a one-day max age;
 * - the KV bucket `<p>_ledger`: `a.<tok(channel)>.r<tok(reader)>` (acknowledged
 *   positions) and `i.<tok(channel)>.<tok(key)>` (idempotency records).
 *
 * A channel name may hold `.` (the NATS token separator) and other
 * characters a subject or a KV key must not: each name becomes one token,
 * `tok(name)`, its UTF-8 bytes in base64url without padding.
 */
import type { HistoryPolicy } from '../history.js';

export const DEFAULT_PREFIX = 'sb';

/** One subject token (and KV key token) for any text. */
export function tok(name: string): string {
  return Buffer.from(name, 'utf8').toString('base64url');
}

/** The text a token was made from (`tok` is reversible). */
export function untok(token: string): string {
  return Buffer.from(token, 'base64url').toString('utf8');
}

/** Size and TTL as they appear in names: whole numbers, at least 1. */
export function policyKey(policy: HistoryPolicy): { size: number; ttlMs: number } {
  return { size: Math.max(1, Math.floor(policy.size)), ttlMs: Math.max(1, Math.ceil(policy.ttlMs)) };
}

export class NatsNames {
  /** Control subject every node subscribes to. */
  readonly controlAll: string;
  /** Every channel's publications: what a node in all mode subscribes to. */
  readonly everything: string;
  readonly presenceBucket: string;
  /** The presence bucket of earlier versions (other keys, a one-day max age): only ever deleted. */
  readonly legacyPresenceBucket: string;
  /** The KV bucket of acknowledged positions and idempotency records. */
  readonly ledgerBucket: string;
  private readonly channelHead: string;

  constructor(readonly prefix: string = DEFAULT_PREFIX) {
    // Also a stream and bucket name part: no dots, wildcards, spaces or slashes.
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) {
      throw new Error(`NATS prefix "${prefix}" must be 1–32 characters of A-Z a-z 0-9 _ -`);
    }
    this.controlAll = `${prefix}.ctl`;
    this.channelHead = `${prefix}.r.`;
    this.everything = `${prefix}.r.>`;
    this.presenceBucket = `${prefix}_presence_v2`;
    this.legacyPresenceBucket = `${prefix}_presence`;
    this.ledgerBucket = `${prefix}_ledger`;
  }

  /** The core subject of a channel's publications. */
  channel(channel: string): string {
    return `${this.channelHead}${tok(channel)}`;
  }

  /** Whether `subject` carries the publications of `channel` (guards against damaged messages). */
  carries(subject: string, channel: string): boolean {
    return subject === this.channel(channel);
  }

  controlOf(nodeId: string): string {
    return `${this.controlAll}.${tok(nodeId)}`;
  }

  /** The history stream of a policy. */
  historyStream(policy: HistoryPolicy): string {
    const { size, ttlMs } = policyKey(policy);
    return `${this.prefix}_h_${size}_${ttlMs}`;
  }

  /** The position mirror of a policy's history stream. */
  positionStream(policy: HistoryPolicy): string {
    const { size, ttlMs } = policyKey(policy);
    return `${this.prefix}_p_${size}_${ttlMs}`;
  }

  /** Every subject of a policy's history stream (with `>`), or one channel's. */
  historySubject(policy: HistoryPolicy, channel?: string): string {
    const { size, ttlMs } = policyKey(policy);
    return `${this.prefix}.h.${size}.${ttlMs}.${channel === undefined ? '>' : tok(channel)}`;
  }

  /** The ledger key of a reader's acknowledged position on a channel. */
  ackKey(channel: string, reader: string): string {
    return `a.${tok(channel)}.r${tok(reader)}`;
  }

  /** The ledger key of an idempotency record on a channel. */
  onceKey(channel: string, key: string): string {
    return `i.${tok(channel)}.${tok(key)}`;
  }

  /** The KV key of a presence entry. */
  presenceKey(channel: string, node: string, session: string): string {
    return `${tok(channel)}.${tok(node)}.${tok(session)}`;
  }

  /** The KV keys of a channel's presence entries (a wildcard). */
  presenceKeys(channel: string): string {
    return `${tok(channel)}.*.*`;
  }

  /** The KV keys of a node's presence entries, on every channel (a wildcard). */
  nodePresenceKeys(node: string): string {
    return `*.${tok(node)}.*`;
  }

  /** The KV key that marks `node` as one that added presence entries. */
  nodeMarkKey(node: string): string {
    return `n.${tok(node)}`;
  }

  /** Every node mark key (a wildcard). */
  nodeMarkKeys(): string {
    return 'n.*';
  }

  /** The node a mark key names, or undefined for any other key. */
  markedNode(key: string): string | undefined {
    const [head, token, ...rest] = key.split('.');
    return head === 'n' && token && rest.length === 0 ? untok(token) : undefined;
  }
}
