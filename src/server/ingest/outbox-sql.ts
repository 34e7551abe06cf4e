import { personalChannel } from '../../protocol/index.js';

/**
 * The SQL of the PostgreSQL outbox: the table's schema (what
 * `switchboard outbox-schema` prints) and the statements the ingest runs.
 * Table names were checked to be plain identifiers (source.ts) and are
 * quoted here all the same.
 */

/** `app.outbox` → `"app"."outbox"`. */
export function quoteTable(name: string): string {
  return name
    .split('.')
    .map((part) => `"${part.replace(/"/g, '""')}"`)
    .join('.');
}

/** The notification channel of a table's inserts: its name as given. */
export function notifyChannel(table: string): string {
  return `switchboard_${table.replace(/\./g, '_')}`;
}

/** `app.outbox` + `_notify` → `"app"."outbox_notify"`: a name next to the table's. */
function sibling(table: string, suffix: string): string {
  return quoteTable(`${table}${suffix}`);
}

/**
 * The migration: the outbox table (the SPEC's layout, plus a check that
 * exactly one of `channel` and `user_id` is set), a statement trigger that
 * notifies the nodes of new rows, and the dead-letter table when one is named.
 * Idempotent: it can run again on an existing table.
 */
export function outboxSchema(table: string, dead?: string): string {
  const t = quoteTable(table);
  const notify = sibling(table, '_notify');
  const lines = [
    `CREATE TABLE IF NOT EXISTS ${t} (`,
    '  id bigserial PRIMARY KEY,',
    '  channel text,',
    '  user_id text,',
    '  data jsonb NOT NULL,',
    '  created_at timestamptz NOT NULL DEFAULT now(),',
    '  CHECK ((channel IS NULL) <> (user_id IS NULL))',
    ');',
    `CREATE OR REPLACE FUNCTION ${notify}() RETURNS trigger LANGUAGE plpgsql AS $$`,
    `BEGIN PERFORM pg_notify('${notifyChannel(table)}', ''); RETURN NULL; END $$;`,
    `DROP TRIGGER IF EXISTS switchboard_notify ON ${t};`,
    `CREATE TRIGGER switchboard_notify AFTER INSERT ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${notify}();`,
  ];
  if (dead !== undefined) {
    lines.push(
      `CREATE TABLE IF NOT EXISTS ${quoteTable(dead)} (`,
      '  id bigint PRIMARY KEY,',
      '  channel text,',
      '  user_id text,',
      '  data jsonb,',
      '  created_at timestamptz,',
      '  error text NOT NULL,',
      '  failed_at timestamptz NOT NULL DEFAULT now()',
      ');',
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The lane of a row, by the channel it goes to (a send: the user's personal
 * channel), so that every row bound for one channel falls in the same lane.
 */
const LANE = `(hashtext(coalesce(o.channel, '${personalChannel('')}' || o.user_id, '')) & 2147483647) % $1`;

/** The statements of one table. */
export function outboxStatements(table: string, dead: string | undefined) {
  const t = quoteTable(table);
  return {
    /** $1: lanes, $2: rows looked at. The lanes of the oldest rows, outside any transaction. */
    lanes: `SELECT DISTINCT ${LANE} AS lane FROM (SELECT channel, user_id FROM ${t} ORDER BY id LIMIT $2) o`,
    /** $1: the table's lock key, $2: lanes. Those this transaction got; each held until it ends. */
    lock: 'SELECT lane FROM unnest($2::int[]) AS lane WHERE pg_try_advisory_xact_lock($1, lane)',
    /** The table's lock key, from its name. */
    lockKey: `SELECT hashtext($1) AS key`,
    /** $1: lanes, $2: the lanes held, $3: rows at most. Oldest first. */
    // Ordered by the column, not the text the ids are read as (which would put 10 before 9).
    claim: `SELECT o.id::text AS id, o.channel, o.user_id, o.data FROM ${t} o WHERE ${LANE} = ANY($2::int[]) ORDER BY o.id LIMIT $3 FOR UPDATE OF o SKIP LOCKED`,
    /** $1: ids. */
    remove: `DELETE FROM ${t} WHERE id = ANY($1::bigint[])`,
    /** $1: ids, $2: errors (same order). */
    bury:
      dead === undefined
        ? undefined
        : `INSERT INTO ${quoteTable(dead)} (id, channel, user_id, data, created_at, error) SELECT o.id, o.channel, o.user_id, o.data, o.created_at, e.error FROM ${t} o JOIN unnest($1::bigint[], $2::text[]) AS e(id, error) ON o.id = e.id ON CONFLICT (id) DO NOTHING`,
    /** Seconds since the first row (lowest id) was written; no row when the table is empty. Read through the key's index, not a scan. */
    oldest: `SELECT extract(epoch FROM now() - created_at)::float8 AS age FROM ${t} ORDER BY id LIMIT 1`,
  };
}
