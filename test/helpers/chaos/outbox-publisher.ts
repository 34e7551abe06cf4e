/**
 * The business service of the ingest scenarios: instead of calling the API
 * it writes each user's logical messages `{seq}` as rows of a PostgreSQL
 * outbox (sends: `user_id` set), a few of one user's at a time in a small
 * transaction, and the nodes (`--ingest postgres://…?table=…`) publish them.
 * A row counts as published once its transaction committed: that is the
 * ingest's promise (committed ⇒ delivered exactly once, in id order per
 * channel). It has no offset yet, so the ledger gets none; the accounting
 * matches it to its delivery by `{user, seq}`.
 *
 * One user's transactions run one after another, so their rows' ids, commit
 * order and seqs agree; different users' run at once, over a small pool, as
 * a service's requests would. A transaction that fails is not retried (had
 * its COMMIT been sent, it may have committed): its rows count as given up.
 */
import pg from 'pg';
import { quoteTable } from '../../../src/server/ingest/outbox-sql.js';
import type { Ledger } from './ledger.js';
import { PacedPublisher, type PaceOptions } from './paced-publisher.js';

export interface OutboxPublisherOptions extends PaceOptions {
  /** The database, `postgres://user@host:port/db` (no Switchboard parameters). */
  url: string;
  /** The outbox table, as given to `outboxSchema`. */
  table: string;
  /** Rows of one user in each transaction (consecutive seqs). Default 2. */
  rowsPerTransaction?: number;
}

/** Every wait on PostgreSQL is bounded: a query or connect past this fails the transaction. */
const QUERY_TIMEOUT_MS = 5000;

export class OutboxPublisher extends PacedPublisher {
  private readonly pool: pg.Pool;
  private readonly insert: string;
  private readonly rows: number;
  private warned = false;

  constructor(ledger: Ledger, opts: OutboxPublisherOptions) {
    super(ledger, opts);
    this.rows = opts.rowsPerTransaction ?? 2;
    this.insert = `INSERT INTO ${quoteTable(opts.table)} (user_id, data) VALUES ($1, $2::jsonb)`;
    this.pool = new pg.Pool({ connectionString: opts.url, max: 4, connectionTimeoutMillis: QUERY_TIMEOUT_MS, query_timeout: QUERY_TIMEOUT_MS });
    // An idle connection that broke: the pool drops it, the next transaction opens another.
    this.pool.on('error', () => undefined);
  }

  /** One transaction: the user's next rows, each its own INSERT, as a service writes its events. */
  protected override async step(user: string): Promise<void> {
    const seqs = Array.from({ length: this.rows }, () => this.ledger.nextSeq(user));
    this.stats.attempts++;
    let client: pg.PoolClient | undefined;
    let failure: Error | undefined;
    try {
      client = await this.pool.connect();
      await client.query('BEGIN');
      for (const seq of seqs) await client.query(this.insert, [user, JSON.stringify({ seq })]);
      await client.query('COMMIT');
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
      await client?.query('ROLLBACK').catch(() => undefined);
    } finally {
      // A connection whose query failed may be in any state: the pool replaces it.
      client?.release(failure);
    }
    if (failure) {
      this.stats.gaveUp += seqs.length;
      if (!this.warned) console.warn(`outbox publisher: a transaction failed (${failure.message}); its rows count as given up`);
      this.warned = true;
      return;
    }
    for (const seq of seqs) this.acknowledge(user, seq);
  }

  protected override async release(): Promise<void> {
    await this.pool.end();
  }
}
