// What the clients received in one phase of bench/ingest.ts: per channel,
// which records arrived (once, more than once, or not yet), whether one
// overtook another, and how long after its stamp each arrived.

/** The data every record carries: its number on its channel and when it was written, sent or produced (`now()`). */
export interface Stamp {
  seq: number;
  t: number;
}

/**
 * Wall-clock ms with sub-millisecond digits (`Date.now()` counts whole ms,
 * which is most of a loopback latency). Stamps and arrivals are both taken
 * in the bench process, so they share this clock.
 */
export const now = (): number => performance.timeOrigin + performance.now();

/**
 * Record i of a phase goes to channel i % channels with seq base + ⌊i /
 * channels⌋: each channel's seqs count up from the phase's base, which is
 * above every earlier phase's, so a late record of an earlier phase is
 * told apart (a stray) rather than counted.
 */
export class Tally {
  readonly latencies: number[] = [];
  delivered = 0;
  duplicates = 0;
  outOfOrder = 0;
  strays = 0;
  lastAt = NaN;
  private readonly seen: Uint8Array[];
  private readonly highest: number[];

  constructor(
    readonly channels: number,
    readonly base: number,
    readonly count: number,
  ) {
    const perChannel = Math.ceil(count / channels);
    this.seen = Array.from({ length: channels }, () => new Uint8Array(perChannel));
    this.highest = new Array<number>(channels).fill(-1);
  }

  /** Record `i` of the phase: its channel's index and its seq. */
  record(i: number): { c: number; seq: number } {
    return { c: i % this.channels, seq: this.base + Math.floor(i / this.channels) };
  }

  /** A delivery on channel `c` at `at`. */
  arrive(c: number, data: Stamp, at: number): void {
    const k = data.seq - this.base;
    const seen = this.seen[c];
    if (seen === undefined || !Number.isInteger(k) || k < 0 || k >= seen.length) {
      this.strays++;
      return;
    }
    if (seen[k]) {
      this.duplicates++;
      return;
    }
    seen[k] = 1;
    this.delivered++;
    if (data.seq < this.highest[c]!) this.outOfOrder++;
    else this.highest[c] = data.seq;
    this.latencies.push(at - data.t);
    this.lastAt = at;
  }
}
