// The three ways bench/ingest.ts writes records for a server to deliver,
// and the pacing that drives them. A feed keeps order where its writer
// would: records go to lanes by channel, each lane's sends one after
// another (`perLane` 1) or several at once (HTTP, which keeps no order).
// Each record's stamp is taken when its send starts writing it, so the
// latency runs from the write (the INSERT, the produce, the request), not
// from when it fell due.
import type { Producer } from '@platformatic/kafka';
import pg from 'pg';
import { quoteTable } from '../../src/server/ingest/outbox-sql.js';
import { MAX_IN_FLIGHT } from '../lib/http.js';
import { type Quantiles, quantiles } from '../lib/stats.js';
import { sleep } from '../lib/wait.js';
import { now } from './tally.js';

/** A record to write: its channel (index and name) and its seq. */
export interface Rec {
  c: number;
  channel: string;
  seq: number;
}

export interface Feed {
  /** Queues that keep order: record → lane `c % lanes`. */
  lanes: number;
  /** Sends under way at once in one lane. */
  perLane: number;
  /** Records per send: exactly this many (the last send may have fewer); 0: every record due. */
  batch: number;
  send(records: Rec[], lane: number): Promise<void>;
  close(): Promise<void>;
}

/** The pacing timer: every tick sends what has fallen due since the last. */
const TICK_MS = 10;

/**
 * Rows in transactions of `batch` rows, as a service writes its outbox:
 * `BEGIN; INSERT … (batch rows); COMMIT` on `writers` connections, each
 * channel always on the same one, so that a channel's rows are committed
 * in seq order (two transactions in flight at once may commit out of id
 * order, docs/ingest.md, which would count against the ingest).
 */
export async function outboxFeed(url: string, table: string, writers: number, batch: number): Promise<Feed> {
  const pool = new pg.Pool({ connectionString: url, max: writers });
  pool.on('error', () => undefined);
  const clients = await Promise.all(Array.from({ length: writers }, () => pool.connect()));
  const insert = (n: number): string =>
    `INSERT INTO ${quoteTable(table)} (channel, data) VALUES ${Array.from({ length: n }, (_, i) => `($${2 * i + 1}, $${2 * i + 2}::jsonb)`).join(', ')}`;
  return {
    lanes: writers,
    perLane: 1,
    batch,
    async send(records, lane) {
      const client = clients[lane]!;
      await client.query('BEGIN');
      try {
        const t = now();
        await client.query(insert(records.length), records.flatMap((r) => [r.channel, JSON.stringify({ seq: r.seq, t })]));
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    },
    async close() {
      for (const c of clients) c.release();
      await pool.end();
    },
  };
}

/** Records keyed by channel (so a channel's records share a partition), every one due in one `send` with acks from all in-sync replicas, one send at a time. */
export function kafkaFeed(producer: Producer<string, string, string, string>, topic: string): Feed {
  return {
    lanes: 1,
    perLane: 1,
    batch: 0,
    async send(records) {
      const t = now();
      const messages = records.map((r) => ({ topic, key: r.channel, value: JSON.stringify({ channel: r.channel, data: { seq: r.seq, t } }) }));
      await producer.send({ messages, acks: -1 });
    },
    close: async () => undefined,
  };
}

/** One HTTP publish per record, at most `MAX_IN_FLIGHT` at once (no order kept between them), spread over the nodes. */
export function httpFeed(publish: (node: number, channel: string, data: unknown) => Promise<void>, nodes: number): Feed {
  let k = 0;
  return {
    lanes: 1,
    perLane: MAX_IN_FLIGHT,
    batch: 1,
    send: async ([r]) => publish(k++ % nodes, r!.channel, { seq: r!.seq, t: now() }),
    close: async () => undefined,
  };
}

export interface Sent {
  /** Records handed to a send (failed ones included). */
  attempted: number;
  /** Records of sends that failed (a failed HTTP publish may still have been delivered). */
  failed: number;
  firstError?: string;
  /** From the first record due until the last was handed to a send, s. */
  seconds: number;
  /** How long each send took (a transaction, a produce with its acks, a request), ms: the writer's part of the latency. */
  write: Quantiles;
}

/**
 * Writes `count` records (`recordAt(i)`) through `feed` at `rate` per
 * second: a timer every `TICK_MS` queues what has fallen due and each lane
 * sends as it may; a send that ends starts the lane's next at once. Stops
 * after `deadlineMs` whatever is left (a feed that cannot keep up), and
 * waits for the sends under way within the same deadline.
 */
export async function drive(feed: Feed, recordAt: (i: number) => Rec, count: number, rate: number, deadlineMs: number): Promise<Sent> {
  const queues: Rec[][] = Array.from({ length: feed.lanes }, () => []);
  const busy = new Array<number>(feed.lanes).fill(0);
  const began = performance.now();
  let next = 0;
  let attempted = 0;
  let failed = 0;
  let firstError: string | undefined;
  let handedAt = began;
  const writes: number[] = [];
  const pump = (lane: number): void => {
    const q = queues[lane]!;
    const full = (): boolean => feed.batch === 0 || q.length >= feed.batch || next >= count;
    while (busy[lane]! < feed.perLane && q.length > 0 && full()) {
      const records = q.splice(0, feed.batch || q.length);
      busy[lane]!++;
      attempted += records.length;
      if (attempted === count) handedAt = performance.now();
      const t0 = performance.now();
      feed
        .send(records, lane)
        .then(() => void writes.push(performance.now() - t0))
        .catch((err: unknown) => {
          failed += records.length;
          firstError ??= err instanceof Error ? err.message : String(err);
        })
        .finally(() => {
          busy[lane]!--;
          pump(lane);
        });
    }
  };
  const pending = (): boolean => next < count || busy.some((b) => b > 0) || queues.some((q) => q.length > 0);
  while (pending() && performance.now() - began < deadlineMs) {
    const due = Math.min(count, Math.floor(((performance.now() - began) * rate) / 1000) + 1);
    for (; next < due; next++) {
      const r = recordAt(next);
      queues[r.c % feed.lanes]!.push(r);
    }
    for (let lane = 0; lane < feed.lanes; lane++) pump(lane);
    await sleep(TICK_MS);
  }
  if (attempted < count) handedAt = performance.now();
  return { attempted, failed, ...(firstError !== undefined ? { firstError } : {}), seconds: (handedAt - began) / 1000, write: quantiles(writes) };
}
