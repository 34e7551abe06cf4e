/**
 * Publishes to every user steadily, for reconnect storms: round r sends
 * `{r}` to each user's personal channel, a batch of users at a time through
 * `POST /api/broadcast`, at `perSecond` publications per second, the batches
 * going round-robin over `targets` (nodes that stay up). It records the
 * offset the server confirmed for each (user, round): only those count as
 * lost if a client never gets them, and each must arrive with that offset.
 * (Rounds are not an order: under load, a slow request for round r may be
 * published after round r + 1. Offsets are the order.) Bounded: at most `maxRounds` rounds,
 * each request at most `timeoutMs`.
 */
import { sleep } from './wait.js';

export interface RoundPublisherOptions {
  users: string[];
  /** Base URLs (`http://127.0.0.1:port`) of the nodes to publish through. */
  targets: string[];
  apiKey: string;
  /** Users per `/api/broadcast` request (at most 1000). */
  batch: number;
  /** Publications per second (users reached per second). */
  perSecond: number;
  maxRounds: number;
  timeoutMs?: number;
}

export class RoundPublisher {
  /** `confirmed[user * maxRounds + r]`: the offset the server gave that publication, 0 until it did. */
  readonly confirmed: Float64Array;
  /** Publications the server answered with an error or not at all (not counted as sent). */
  failed = 0;
  /** Rounds started (the last one may be partial). */
  rounds = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly opts: RoundPublisherOptions) {
    this.confirmed = new Float64Array(opts.users.length * opts.maxRounds);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stop sending; resolves once every request sent has been answered (or timed out). */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await Promise.all([...this.inFlight]);
  }

  /** Confirmed publications in all. */
  confirmedCount(): number {
    let n = 0;
    for (const c of this.confirmed) if (c > 0) n++;
    return n;
  }

  /** The offset confirmed for user index `u`'s round `r`, 0 if none. */
  offsetOf(u: number, r: number): number {
    return r >= 0 && r < this.opts.maxRounds ? (this.confirmed[u * this.opts.maxRounds + r] ?? 0) : 0;
  }

  /** Rounds confirmed for user index `u`. */
  confirmedRounds(u: number): number[] {
    const out: number[] = [];
    for (let r = 0; r < this.opts.maxRounds; r++) if (this.confirmed[u * this.opts.maxRounds + r]) out.push(r);
    return out;
  }

  private async run(): Promise<void> {
    const { users, batch, perSecond, maxRounds } = this.opts;
    const intervalMs = (batch * 1000) / perSecond;
    let next = Date.now();
    let sent = 0;
    for (let round = 0; round < maxRounds && this.running; round++) {
      this.rounds = round + 1;
      for (let from = 0; from < users.length && this.running; from += batch) {
        const p = this.send(round, from, Math.min(users.length, from + batch), sent++);
        this.inFlight.add(p);
        void p.finally(() => this.inFlight.delete(p));
        // Paced by the clock, not by the answers: a slow node must not slow the stream down.
        next += intervalMs;
        await sleep(Math.max(0, next - Date.now()));
      }
    }
  }

  private async send(round: number, from: number, to: number, seq: number): Promise<void> {
    const { users, targets, apiKey, maxRounds, timeoutMs = 10_000 } = this.opts;
    const channels = users.slice(from, to).map((u) => `user:${u}`);
    try {
      const res = await fetch(`${targets[seq % targets.length]}/api/broadcast`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
        body: JSON.stringify({ channels, data: { r: round } }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body = (await res.json()) as { results?: Array<{ offset?: number }> };
      if (res.status !== 200 || !Array.isArray(body.results)) {
        this.failed += channels.length;
        return;
      }
      body.results.forEach((result, i) => {
        if (typeof result.offset === 'number' && result.offset > 0) this.confirmed[(from + i) * maxRounds + round] = result.offset;
        else this.failed++;
      });
    } catch {
      this.failed += channels.length;
    }
  }
}

/** What one client received on its personal channel: rounds and their offsets, in arrival order. */
export interface Received {
  rounds: number[];
  offsets: number[];
}

export interface Accounting {
  /** Confirmed publications their user never received. */
  lost: number;
  /** Copies received beyond the first. */
  duplicates: number;
  /** Messages that arrived after one with a higher offset. */
  reordered: number;
  /** Messages whose offset is not the one the server confirmed for them. */
  mismatched: number;
}

/** Every confirmed publication must reach its user (index `u` of `received`) once, in offset order, with its offset. */
export function account(publisher: RoundPublisher, received: Received[]): Accounting {
  const out: Accounting = { lost: 0, duplicates: 0, reordered: 0, mismatched: 0 };
  received.forEach((got, u) => {
    const rounds = new Set(got.rounds);
    out.lost += publisher.confirmedRounds(u).filter((r) => !rounds.has(r)).length;
    out.duplicates += got.rounds.length - rounds.size;
    got.offsets.forEach((offset, i) => {
      if (i > 0 && offset < got.offsets[i - 1]!) out.reordered++;
      const confirmed = publisher.offsetOf(u, got.rounds[i]!);
      if (confirmed > 0 && confirmed !== offset) out.mismatched++;
    });
  });
  return out;
}
