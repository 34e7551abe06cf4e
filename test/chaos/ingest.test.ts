/**
 * Chaos 8: messages that enter through a PostgreSQL outbox instead of the
 * API. Every node of the chaos cluster reads the same table
 * (`--ingest postgres://…?table=outbox`); the service writes each user's
 * `{seq}` as rows in small transactions (`outbox-publisher.ts`), and a row
 * counts as published once its transaction committed: the ingest's promise
 * is that it is then delivered exactly once, in id order per channel.
 *
 * (a) A node is killed with SIGKILL mid-stream (possibly between a publish
 *     and the delete of its row: another node publishes the row again and
 *     the broker answers "duplicate"), then started again.
 * (b) A rolling restart: SIGTERM each node in turn (it stops taking rows,
 *     finishes the round under way, drains its clients), start it again.
 *
 * Both end with the same accounting as every chaos scenario (nothing lost,
 * nothing published twice, nothing out of order) and an empty outbox.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { outboxSchema } from '../../src/server/ingest/outbox-sql.js';
import { OutboxPublisher } from '../helpers/chaos/outbox-publisher.js';
import { metric } from '../helpers/metrics.js';
import { ChaosRun } from '../helpers/chaos/scenario.js';
import { expectNothingLost } from '../helpers/chaos/verdict.js';
import { startPostgres, type PostgresProcess } from '../helpers/postgres-server.js';
import { sleep } from '../helpers/wait.js';

const TABLE = 'outbox';
/** Two rows a transaction, one transaction per user every 300 ms: about 160 rows/s for 24 users, the HTTP scenarios' pace. */
const ROWS_PER_TRANSACTION = 2;
const INTERVAL_MS = 300;

let postgres: PostgresProcess;
let run: ChaosRun | undefined;

beforeAll(async () => {
  postgres = await startPostgres();
  await postgres.sql(outboxSchema(TABLE));
}, 60_000);

afterEach(async () => {
  await run?.close();
  run = undefined;
  // A failed scenario may leave rows: the next one starts with an empty table.
  await postgres.sql(`TRUNCATE ${TABLE}`);
}, 30_000);

afterAll(async () => {
  await postgres?.stop();
}, 30_000);

/** A chaos run whose nodes all ingest the outbox, fed by the outbox publisher. */
function startIngestRun(name: string): Promise<ChaosRun> {
  return ChaosRun.start({
    name,
    nodeArgs: ['--ingest', `${postgres.url}?table=${TABLE}`],
    publisher: (ledger, users) =>
      new OutboxPublisher(ledger, { url: postgres.url, table: TABLE, users, intervalMs: INTERVAL_MS, rowsPerTransaction: ROWS_PER_TRANSACTION }),
  });
}

/** Rows still in the outbox. */
async function outboxRows(): Promise<number> {
  return Number(await postgres.sql(`SELECT count(*) FROM ${TABLE}`));
}

/** Rows the running nodes found published already and skipped (published by a node that died before deleting them; counted since each node's start). */
function skipped(r: ChaosRun): Promise<number> {
  return r.cluster.metric('switchboard_ingest_records_total', { outcome: 'duplicate' });
}

describe('chaos: messages ingested from a PostgreSQL outbox', () => {
  it('kill -9 of a node mid-stream, then started again: nothing lost, doubled or reordered', async () => {
    run = await startIngestRun('ingest-kill');
    const { cluster } = run;
    // Pause, not a wait: rows flow for a while before the fault.
    await sleep(2000);
    // The node holding the most clients (every node works on the outbox).
    const count = (id: string) => run!.clients.filter((c) => c.node === id).length;
    const victim = cluster.nodes.reduce((a, b) => (count(b.id) > count(a.id) ? b : a));
    const slot = cluster.indexOf(victim.id);
    const onVictim = run.clients.filter((c) => c.node === victim.id);
    // It had its share of the outbox: the kill comes mid-stream for the ingest too.
    const victimPublished = await metric(victim.url('/metrics'), 'switchboard_ingest_records_total', { outcome: 'published' });
    expect(victimPublished).toBeGreaterThan(0);

    run.fault('SIGKILL');
    await victim.kill();
    // Wait for the victim's clients to reconnect elsewhere.
    await vi.waitUntil(() => onVictim.every((c) => c.connected && c.node !== victim.id), { timeout: 15_000, interval: 25 });
    await cluster.restart(slot);
    // Pause, not a wait: rows flow for a while after the restart.
    await sleep(3000);
    await run.stopPublishing();
    const fig = await run.finish({ moved: onVictim.length, victimPublished, skipped: await skipped(run) });

    expectNothingLost(run, fig);
    await vi.waitFor(async () => expect(await outboxRows()).toBe(0), { timeout: 5000, interval: 100 });
  }, 60_000);

  it('rolling restart (SIGTERM, start again, next): nothing lost, doubled or reordered', async () => {
    run = await startIngestRun('ingest-rolling');
    // Pause, not a wait: rows flow for a while before the restarts.
    await sleep(1500);
    const { exitCodes } = await run.rollingRestart();
    // Pause, not a wait: rows flow for a while after the restarts.
    await sleep(2000);
    await run.stopPublishing();
    const fig = await run.finish({ skipped: await skipped(run) });

    expect(exitCodes).toEqual([0, 0, 0]);
    expectNothingLost(run, fig);
    await vi.waitFor(async () => expect(await outboxRows()).toBe(0), { timeout: 5000, interval: 100 });
  }, 90_000);
});
