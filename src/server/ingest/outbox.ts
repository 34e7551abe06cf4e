/**
 * The PostgreSQL outbox ingest (`--ingest postgres://…?table=…`): rows a
 * business transaction wrote are published exactly once, in id order per
 * channel, by whichever node of the cluster is free.
 *
 * - **Claiming.** Rows fall into `lanes` by a hash of their channel (or
 *   user), so every row of one channel is in one lane. In one transaction a
 *   node takes free lanes among those of the oldest rows with advisory locks
 *   (at most half of them, so that another node finds work too; a lane
 *   another node holds is skipped), claims their oldest rows `FOR UPDATE
 *   SKIP LOCKED`, publishes them, and deletes what it published. So one lane
 *   is worked by one node at a time (the order per channel), and as many
 *   nodes as there are lanes can work at once.
 * - **Exactly once.** Each row is published with the idempotency key
 *   `pg:<table>:<id>`, and deleted only once the publish is stored. A node
 *   that dies between the two leaves the rows locked only until PostgreSQL
 *   sees its connection go: the next claimer publishes them again, and the
 *   broker answers "duplicate" instead of delivering them twice (within
 *   `--idempotency-window`).
 * - **Order.** A channel's rows are published one after another; when one
 *   fails for a reason that may pass (broker unavailable), the rest of that
 *   channel waits for the next round, so none overtakes it. A row that can
 *   never be published (not a valid command) goes to the dead-letter table
 *   or the log, and the channel goes on.
 * - **Latency.** A statement trigger notifies the nodes of inserts
 *   (LISTEN/NOTIFY), so a new row goes out within milliseconds; polling
 *   every `poll` ms covers notifications lost while a connection was down.
 */
import type { Pool, PoolClient } from 'pg';
import type { Logger } from 'pino';
import { ErrorCode, personalChannel, SwitchboardError } from '../../protocol/index.js';
import { backoffDelay } from '../../shared/backoff.js';
import {
  errorText,
  isPoison,
  KEY_NAME_CHARS,
  publishRecord,
  RETRY_MAX_MS,
  RETRY_MIN_MS,
  statusOf,
  zeroMetrics,
  type Ingest,
  type IngestCommands,
  type IngestStatus,
  type Outcome,
} from './ingest.js';
import type { Metrics } from '../metrics.js';
import { notifyChannel, outboxStatements } from './outbox-sql.js';
import type { OutboxSource } from './source.js';

/** A claimed row. */
interface Row {
  id: string;
  channel: string | null;
  user_id: string | null;
  data: unknown;
}

/** What a round did: rows it finished (published, repeated or dead), and whether some of them must wait for another round. */
interface RoundResult {
  finished: number;
  held: boolean;
}

/** Rows wait but every lane of theirs was held by another transaction (another node's, or a dead one's not yet ended): look again this soon, not after the poll. */
const BUSY_MS = 200;

export class OutboxIngest implements Ingest {
  private readonly sql;
  private pool: Pool | undefined;
  private listener: { end(): Promise<void> } | undefined;
  private closed = false;
  private running: Promise<void> | undefined;
  /** A notification (or a close) arrived: do not sleep. */
  private woken = false;
  private wakeUp: (() => void) | undefined;
  private lockKey: number | undefined;
  private oldest: number | null = null;
  private error: string | undefined;
  /** Where this node starts its pass over the lanes: spread over the nodes. */
  private readonly firstLane: number;

  constructor(
    private readonly source: OutboxSource,
    private readonly commands: IngestCommands,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.sql = outboxStatements(source.table, source.dead);
    this.firstLane = Math.floor(Math.random() * source.lanes);
  }

  /** Connect and start working; the loop rides out PostgreSQL being away. */
  async start(): Promise<void> {
    zeroMetrics(this.metrics, this.source.label);
    const { default: pg } = await import('pg');
    this.pool = new pg.Pool({ connectionString: this.source.connection, max: 2, idleTimeoutMillis: 30_000 });
    // An idle client whose server went away: the pool drops it; the next round connects anew.
    this.pool.on('error', (err) => this.log.debug({ err, source: this.source.label }, 'outbox connection lost'));
    this.listen(pg.Client);
    this.running = this.loop();
  }

  status(): IngestStatus {
    return statusOf(this.source.label, this.error, this.oldest, this.source.stuckSeconds);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await this.running;
    await this.listener?.end().catch(() => undefined);
    await this.pool?.end().catch(() => undefined);
  }

  private wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Until `ms` pass or a notification comes. */
  private async pause(ms: number): Promise<void> {
    if (this.woken || this.closed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wakeUp = undefined;
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      this.woken = false;
      try {
        this.lockKey ??= await this.tableKey();
        // One query to find the table empty, rather than a transaction for nothing.
        await this.look();
        const { finished, held } = this.oldest === null ? { finished: 0, held: false } : await this.round(this.lockKey);
        if (held) throw new Error(this.error ?? 'a publish failed');
        failures = 0;
        this.error = undefined;
        this.report();
        // Rows finished: more may be waiting behind them.
        if (finished > 0) continue;
        await this.pause(this.oldest === null ? this.source.pollMs : Math.min(this.source.pollMs, BUSY_MS));
      } catch (err) {
        failures++;
        this.error = errorText(err);
        this.metrics.ingestFailures.inc({ source: this.source.label });
        this.report();
        if (failures === 1 || failures % 20 === 0) this.log.warn({ err, source: this.source.label, failures }, 'outbox ingest failed; retrying');
        if (!this.closed) await this.pause(backoffDelay(failures, RETRY_MIN_MS, RETRY_MAX_MS));
      }
    }
  }

  private async tableKey(): Promise<number> {
    const { rows } = await this.pool!.query<{ key: number }>(this.sql.lockKey, [`switchboard:${this.source.table}`]);
    return rows[0]!.key;
  }

  /** The oldest row's age, for the stuck check and the lag gauge. */
  private async look(): Promise<void> {
    const { rows } = await this.pool!.query<{ age: number | null }>(this.sql.oldest);
    this.oldest = rows[0]?.age ?? null;
  }

  private report(): void {
    const source = this.source.label;
    this.metrics.ingestOldest.set({ source }, this.oldest ?? 0);
    this.metrics.ingestStuck.set({ source }, this.status().state === 'running' ? 0 : 1);
  }

  /**
   * One transaction: take the free lanes among those of the oldest rows (at
   * most half of them, so that other nodes find work too), claim their oldest
   * rows, publish, delete.
   */
  private async round(lockKey: number): Promise<RoundResult> {
    const { lanes, batch } = this.source;
    const seen = (await this.pool!.query<{ lane: number }>(this.sql.lanes, [lanes, batch * lanes])).rows.map((r) => r.lane).sort((x, y) => x - y);
    if (seen.length === 0) return { finished: 0, held: false };
    // From a lane of this node's own, so that nodes asking at once start apart.
    const start = seen.findIndex((lane) => lane >= this.firstLane);
    const order = [...seen.slice(Math.max(0, start)), ...seen.slice(0, Math.max(0, start))];
    const half = Math.max(1, Math.ceil(order.length / 2));
    const client = await this.pool!.connect();
    let broken: Error | undefined;
    // The server may go away while the client waits for a publish: without a listener that error would end the process.
    const onError = (err: Error): void => {
      broken = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const lock = async (lanesWanted: number[]): Promise<number[]> =>
        lanesWanted.length === 0 ? [] : (await client.query<{ lane: number }>(this.sql.lock, [lockKey, lanesWanted])).rows.map((r) => r.lane);
      // The first half; when another node holds all of those, the other half.
      let taken = await lock(order.slice(0, half));
      if (taken.length === 0) taken = await lock(order.slice(half));
      if (taken.length === 0) {
        await client.query('ROLLBACK');
        return { finished: 0, held: false };
      }
      const { rows } = await client.query<Row>(this.sql.claim, [lanes, taken, batch]);
      if (rows.length === 0) {
        await client.query('ROLLBACK');
        return { finished: 0, held: false };
      }
      this.metrics.ingestRead.inc({ source: this.source.label }, rows.length);
      const published = await this.publishAll(rows);
      await this.finish(client, published.done, published.dead);
      await client.query('COMMIT');
      for (const [outcome, n] of Object.entries(published.outcomes)) if (n > 0) this.metrics.ingestRecords.inc({ source: this.source.label, outcome }, n);
      return { finished: published.done.length, held: published.held };
    } catch (err) {
      broken = err instanceof Error ? err : new Error(String(err));
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.off('error', onError);
      // A client whose query failed may be in any state: the pool replaces it.
      client.release(broken);
    }
  }

  /** Bury the dead rows (when there is a table for them) and delete every finished one. */
  private async finish(client: PoolClient, done: string[], dead: Array<{ id: string; error: string }>): Promise<void> {
    if (dead.length > 0 && this.sql.bury !== undefined) {
      await client.query(this.sql.bury, [dead.map((d) => d.id), dead.map((d) => d.error)]);
    }
    if (done.length > 0) await client.query(this.sql.remove, [done]);
  }

  /** Publish the claimed rows: each channel's in id order, the channels at once. */
  private async publishAll(rows: Row[]) {
    const byChannel = new Map<string, Row[]>();
    for (const row of rows) {
      // A send goes to the user's personal channel: rows published there directly queue behind it too.
      const target = row.channel ?? personalChannel(row.user_id ?? '');
      let list = byChannel.get(target);
      if (!list) byChannel.set(target, (list = []));
      list.push(row);
    }
    const done: string[] = [];
    const dead: Array<{ id: string; error: string }> = [];
    const outcomes: Record<Outcome, number> = { published: 0, duplicate: 0, dead: 0 };
    let held = false;
    await Promise.all(
      [...byChannel.values()].map(async (list) => {
        for (const row of list) {
          try {
            outcomes[await this.publish(row)]++;
            done.push(row.id);
          } catch (err) {
            if (!isPoison(err)) {
              // The rest of this channel waits for the next round, behind this row.
              held = true;
              this.error = errorText(err);
              return;
            }
            this.log.warn({ source: this.source.label, id: row.id, error: errorText(err) }, 'outbox row is not a valid command: dead-lettered');
            outcomes.dead++;
            dead.push({ id: row.id, error: errorText(err) });
            done.push(row.id);
          }
        }
      }),
    );
    return { done, dead, outcomes, held };
  }

  private async publish(row: Row): Promise<Exclude<Outcome, 'dead'>> {
    if ((row.channel === null) === (row.user_id === null)) {
      throw new SwitchboardError(ErrorCode.BadRequest, 'exactly one of channel and user_id must be set');
    }
    const target = row.channel !== null ? { channel: row.channel } : { user: row.user_id ?? '' };
    return publishRecord(this.commands, target, row.data, `pg:${this.source.table.slice(0, KEY_NAME_CHARS)}:${row.id}`);
  }

  /** LISTEN on a connection of its own, reconnected with backoff; every (re)connect wakes the loop once, for rows written meanwhile. */
  private listen(Client: typeof import('pg').Client): void {
    let attempt = 0;
    const connect = async (): Promise<void> => {
      if (this.closed) return;
      const client = new Client({ connectionString: this.source.connection });
      let gone = false;
      const retry = (err?: unknown): void => {
        if (gone) return;
        gone = true;
        this.listener = undefined;
        client.end().catch(() => undefined);
        if (this.closed) return;
        if (err !== undefined) this.log.debug({ err, source: this.source.label }, 'outbox listener lost');
        // A round now finds out whether the server is gone (and says so in /readyz) rather than at the next poll.
        this.wake();
        setTimeout(() => void connect(), backoffDelay(++attempt, RETRY_MIN_MS, RETRY_MAX_MS)).unref();
      };
      client.on('error', retry);
      client.on('end', () => retry());
      client.on('notification', () => this.wake());
      try {
        await client.connect();
        await client.query(`LISTEN "${notifyChannel(this.source.table)}"`);
        attempt = 0;
        this.listener = { end: () => ((gone = true), client.end()) };
        if (this.closed) await client.end();
        else this.wake();
      } catch (err) {
        retry(err);
      }
    };
    void connect();
  }
}
