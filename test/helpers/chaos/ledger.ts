/**
 * The live record of a chaos scenario: the publisher writes what was
 * acknowledged, clients write what they delivered and the resets they were
 * told about. It hands out each user's sequence numbers, answers "is
 * anything acknowledged a while ago still missing?" cheaply while the
 * scenario runs (for the recovery clock), and gives the final accounting.
 */
import { account, covers, type Accounting, type AckedMessage, type Delivery, type ResetNotice } from './accounting.js';

interface UserBook {
  /** Acknowledged messages in acknowledgement order (one publish at a time per user, so also seq order). */
  acked: AckedMessage[];
  /** Index of the first acknowledged message not yet known to be delivered or told. */
  cursor: number;
  /** Seqs delivered by any client of the user. */
  seqs: Set<number>;
  resets: ResetNotice[];
  nextSeq: number;
}

export class Ledger {
  readonly acked: AckedMessage[] = [];
  readonly deliveries: Delivery[] = [];
  readonly resets: ResetNotice[] = [];
  private readonly books = new Map<string, UserBook>();

  private book(user: string): UserBook {
    let b = this.books.get(user);
    if (!b) this.books.set(user, (b = { acked: [], cursor: 0, seqs: new Set(), resets: [], nextSeq: 1 }));
    return b;
  }

  /** The next sequence number of `user`'s messages: 1, 2, 3… across every publisher of the scenario. */
  nextSeq(user: string): number {
    return this.book(user).nextSeq++;
  }

  ack(msg: AckedMessage): void {
    this.acked.push(msg);
    this.book(msg.user).acked.push(msg);
  }

  deliver(d: Delivery): void {
    this.deliveries.push(d);
    this.book(d.user).seqs.add(d.seq);
  }

  reset(r: ResetNotice): void {
    this.resets.push(r);
    this.book(r.user).resets.push(r);
  }

  /** Seqs of `user` delivered so far (by any of its clients). */
  deliveredSeqs(user: string): ReadonlySet<number> {
    return this.book(user).seqs;
  }

  /**
   * How many messages of `users` (default: every user) acknowledged at or
   * before `before` are neither delivered nor covered by a reset.
   */
  missing(before: number, users?: readonly string[]): number {
    let n = 0;
    for (const user of users ?? [...this.books.keys()]) {
      const b = this.book(user);
      const accounted = (a: AckedMessage): boolean => b.seqs.has(a.seq) || b.resets.some((r) => covers(r, a));
      while (b.cursor < b.acked.length && accounted(b.acked[b.cursor]!)) b.cursor++;
      for (let i = b.cursor; i < b.acked.length && b.acked[i]!.at <= before; i++) if (!accounted(b.acked[i]!)) n++;
    }
    return n;
  }

  /** The accounting of everything recorded (see accounting.ts). */
  figures(): Accounting {
    return account(this.acked, this.deliveries, this.resets);
  }
}
