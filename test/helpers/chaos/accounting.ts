/**
 * The end-of-scenario accounting of the chaos suite, as a pure function of
 * what was recorded: which publishes were acknowledged (2xx), what each
 * client delivered to the app, and which recovery failures the app was told
 * about (`reset`, i.e. `recovered: false`). Kept free of I/O so its verdicts
 * can be tested on hand-made records (test/chaos/accounting.test.ts).
 */

/**
 * A logical message the publisher got an acknowledgement for: a 2xx with the
 * `{offset, epoch}` the server answered, or the commit of an outbox row,
 * which has no position yet (the ingest publishes it later). Matched to the
 * deliveries by `{user, seq}` either way; the position only decides whether a
 * reset told the app about it.
 */
export interface AckedMessage {
  user: string;
  seq: number;
  /** Where the server stored it; absent when the way in answers no position (an outbox row). */
  offset?: number;
  epoch?: string;
  /** When the 2xx arrived, or the row's transaction committed (ms since the epoch). */
  at: number;
}

/** One message a client handed to the app (the SDK's `personal` event). */
export interface Delivery {
  user: string;
  /** Which client object delivered it: a user may have several in turn (fresh clients, devices). */
  client: number;
  seq: number;
  offset: number;
  epoch: string;
  at: number;
}

/** The app was told that recovery failed (the SDK's `reset` event, with the position it restarts from). */
export interface ResetNotice {
  user: string;
  client: number;
  offset?: number;
  epoch?: string;
  at: number;
}

export interface Accounting {
  /** Messages acknowledged with a 2xx. */
  published: number;
  /** Distinct messages delivered, counted once per user after de-duplication by `{epoch, offset}`. */
  delivered: number;
  /** Acknowledged messages never delivered, where the app was not told. Must be 0. */
  lost: number;
  /** Acknowledged messages never delivered that a `reset` told the app about (allowed). */
  lostTold: number;
  /** Messages published twice: the same seq under two different offsets. */
  duplicates: number;
  /** The same `{epoch, offset}` handed to the app twice by one client object: the SDK's de-duplication failed. */
  sdkDuplicates: number;
  /** Deliveries whose seq was not above the previous one of the same client object. */
  outOfOrder: number;
  /** `reset` notices (each a `recovered: false` the app was told about). */
  resets: number;
  /** Users with at least one problem, for failure messages. */
  problems: string[];
}

/**
 * Whether `reset` tells the app that `msg` may be missing: an older epoch, or
 * at or below its restart position. A message without a position is never
 * covered: nothing says on which side of the restart it was stored.
 */
export function covers(reset: ResetNotice, msg: AckedMessage): boolean {
  if (reset.user !== msg.user || msg.offset === undefined || msg.epoch === undefined) return false;
  if (reset.epoch !== undefined && reset.epoch !== msg.epoch) return msg.at <= reset.at;
  return reset.offset !== undefined && msg.offset <= reset.offset;
}

const key = (epoch: string, offset: number): string => `${epoch}/${offset}`;
const where = (a: AckedMessage): string => (a.offset !== undefined && a.epoch !== undefined ? `offset ${key(a.epoch, a.offset)}` : 'no offset');

/** Account for every user of `acked`, `deliveries` and `resets`. */
export function account(acked: readonly AckedMessage[], deliveries: readonly Delivery[], resets: readonly ResetNotice[]): Accounting {
  const users = new Set([...acked.map((a) => a.user), ...deliveries.map((d) => d.user)]);
  const total: Accounting = {
    published: acked.length,
    delivered: 0,
    lost: 0,
    lostTold: 0,
    duplicates: 0,
    sdkDuplicates: 0,
    outOfOrder: 0,
    resets: resets.length,
    problems: [],
  };
  for (const user of [...users].sort()) {
    const mine = deliveries.filter((d) => d.user === user);
    const told = resets.filter((r) => r.user === user);
    const problems: string[] = [];

    // Per client object: the SDK must never hand the same offset twice, and seqs must rise.
    const byClient = new Map<number, Delivery[]>();
    for (const d of mine) {
      const list = byClient.get(d.client);
      if (list) list.push(d);
      else byClient.set(d.client, [d]);
    }
    for (const [client, list] of byClient) {
      const seen = new Set<string>();
      let lastSeq = -Infinity;
      for (const d of list) {
        const k = key(d.epoch, d.offset);
        if (seen.has(k)) {
          total.sdkDuplicates++;
          problems.push(`client ${client} got offset ${k} twice`);
          continue;
        }
        seen.add(k);
        if (d.seq <= lastSeq) {
          total.outOfOrder++;
          problems.push(`client ${client} got seq ${d.seq} after ${lastSeq}`);
        }
        lastSeq = Math.max(lastSeq, d.seq);
      }
    }

    // Across client objects, de-duplicate by offset: what remains is what the user got.
    const unique = new Map<string, Delivery>();
    for (const d of mine) if (!unique.has(key(d.epoch, d.offset))) unique.set(key(d.epoch, d.offset), d);
    total.delivered += unique.size;
    const offsetsOfSeq = new Map<number, number>();
    for (const d of unique.values()) offsetsOfSeq.set(d.seq, (offsetsOfSeq.get(d.seq) ?? 0) + 1);
    for (const [seq, n] of offsetsOfSeq) {
      if (n > 1) {
        total.duplicates += n - 1;
        problems.push(`seq ${seq} under ${n} offsets`);
      }
    }

    for (const a of acked.filter((x) => x.user === user)) {
      if (offsetsOfSeq.has(a.seq)) continue;
      if (told.some((r) => covers(r, a))) total.lostTold++;
      else {
        total.lost++;
        problems.push(`seq ${a.seq} (${where(a)}) lost`);
      }
    }
    if (problems.length > 0) total.problems.push(`${user}: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5})` : ''}`);
  }
  return total;
}
