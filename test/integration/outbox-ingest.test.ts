/**
 * The PostgreSQL outbox ingest, end to end: a real PostgreSQL and a real
 * redis-server, two node processes reading the same outbox table
 * (`--ingest postgres://…?table=outbox`), clients on node a. Every row
 * reaches its channel or user exactly once and in id order per channel:
 * as rows come in, while a node is killed with SIGKILL mid-stream, across a
 * PostgreSQL restart, and past a row that is not a valid command (which goes
 * to the dead-letter table and holds nothing up). Polling is set to a minute,
 * so rows that go out within a second went out on a notification.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { personalChannel, type ServerFrame } from '../../src/protocol/index.js';
import { outboxSchema } from '../../src/server/ingest/outbox-sql.js';
import { metric } from '../helpers/metrics.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startPostgres, type PostgresProcess } from '../helpers/postgres-server.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { sleep } from '../helpers/wait.js';

let postgres: PostgresProcess;
let redis: RedisProcess;
let db: pg.Pool;
let a: NodeProcess;
let b: NodeProcess;
const clients: RawClient[] = [];

const ingestUrl = (): string => `${postgres.url}?table=outbox&dead=outbox_dead&poll=60000&batch=50&lanes=8`;

async function startNode(id: string): Promise<NodeProcess> {
  return startNodeProcess(id, ['--broker', redis.url, '--insecure', '--ingest', ingestUrl(), '--heartbeat', '1']);
}

async function connect(user: string, channels: string[]): Promise<RawClient> {
  const client = await RawClient.connect(a.ws(`user=${user}`));
  client.answerPings();
  clients.push(client);
  for (const channel of channels) expect(await client.request({ type: 'subscribe', channel })).not.toHaveProperty('error');
  return client;
}

/** The `seq` of every message `client` got on `channel`, in arrival order. */
function seqs(client: RawClient, channel: string): number[] {
  return client.frames
    .filter((f): f is Extract<ServerFrame, { type: 'message' }> => f.type === 'message' && f.channel === channel)
    .map((f) => (f.data as { seq: number }).seq);
}

const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Rows `[channel | null, user | null, seq]` in one transaction, in the order given (so in id order). */
async function insert(rows: Array<[string | null, string | null, number]>): Promise<void> {
  const values = rows.map((_, i) => `($${i * 3 + 1}, $${i * 3 + 2}, jsonb_build_object('seq', $${i * 3 + 3}::int))`).join(', ');
  await db.query(`INSERT INTO outbox (channel, user_id, data) VALUES ${values}`, rows.flat());
}

/** `count` rows for each of `channels`, interleaved, `perTx` rows a transaction, starting at `from`. */
async function stream(channels: string[], from: number, count: number, perTx: number, pauseMs = 0): Promise<void> {
  const rows: Array<[string | null, string | null, number]> = [];
  for (let seq = from; seq < from + count; seq++) for (const c of channels) rows.push(c.startsWith('user:') ? [null, c.slice('user:'.length), seq] : [c, null, seq]);
  for (let i = 0; i < rows.length; i += perTx) {
    await insert(rows.slice(i, i + perTx));
    // Rows keep coming while the fault happens, as a business service's would.
    if (pauseMs > 0) await sleep(pauseMs);
  }
}

async function remaining(table = 'outbox'): Promise<number> {
  const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
  return Number(rows[0]?.n);
}

beforeAll(async () => {
  [postgres, redis] = await Promise.all([startPostgres(), startRedis()]);
  await postgres.sql(outboxSchema('outbox', 'outbox_dead'));
  db = new pg.Pool({ connectionString: postgres.url, max: 2 });
  db.on('error', () => undefined);
  [a, b] = await Promise.all([startNode('a'), startNode('b')]);
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await Promise.all([a?.kill(), b?.kill()]);
  await db?.end();
  await Promise.all([postgres?.stop(), redis?.stop()]);
});

describe('the PostgreSQL outbox ingest', () => {
  it('publishes every row once, in id order per channel, to channels and users, within a second of its insert', async () => {
    const channels = ['orders.1', 'orders.2', 'orders.3'];
    const client = await connect('alice', channels);
    const started = Date.now();
    await insert([['orders.1', null, 0], ['orders.2', null, 0], ['orders.3', null, 0]]);
    await vi.waitFor(() => expect(seqs(client, 'orders.3')).toEqual([0]), { timeout: 5_000, interval: 10 });
    // A notification, not the minute-long poll, sent it.
    expect(Date.now() - started).toBeLessThan(1_000);

    await stream([...channels, personalChannel('alice')], 1, 99, 20);
    await vi.waitFor(
      () => {
        for (const c of channels) expect(seqs(client, c)).toEqual(upTo(100));
        expect(seqs(client, personalChannel('alice'))).toEqual(upTo(100).slice(1));
      },
      { timeout: 20_000, interval: 50 },
    );
    await vi.waitFor(async () => expect(await remaining()).toBe(0), { timeout: 5_000 });
    const published = (await metric(a.url('/metrics'), 'switchboard_ingest_records_total', { outcome: 'published' })) + (await metric(b.url('/metrics'), 'switchboard_ingest_records_total', { outcome: 'published' }));
    expect(published).toBe(3 * 100 + 99);
  }, 40_000);

  it('dead-letters a row that is not a valid command and goes on with its channel', async () => {
    const client = await connect('bob', ['poison.ok']);
    await insert([
      ['poison.ok', null, 0],
      ['not a channel!', null, 1],
      [null, 'x'.repeat(300), 2],
      ['poison.ok', null, 3],
    ]);
    await vi.waitFor(() => expect(seqs(client, 'poison.ok')).toEqual([0, 3]), { timeout: 5_000, interval: 20 });
    await vi.waitFor(async () => expect(await remaining('outbox_dead')).toBe(2), { timeout: 5_000 });
    const { rows } = await db.query<{ error: string }>('SELECT error FROM outbox_dead ORDER BY id');
    expect(rows.map((r) => r.error).join('\n')).toMatch(/channel name/);
    expect(await remaining()).toBe(0);
    const dead = (await metric(a.url('/metrics'), 'switchboard_ingest_records_total', { outcome: 'dead' })) + (await metric(b.url('/metrics'), 'switchboard_ingest_records_total', { outcome: 'dead' }));
    expect(dead).toBe(2);
  }, 20_000);

  it('loses and repeats nothing when a node is killed with SIGKILL mid-stream', async () => {
    const channels = Array.from({ length: 6 }, (_, i) => `kill.${i}`);
    const client = await connect('carol', channels);
    const writing = stream([...channels, personalChannel('carol')], 0, 300, 35, 5);
    // Once a part has gone out, node b dies, possibly between a publish and its delete.
    await vi.waitFor(() => expect(seqs(client, 'kill.0').length).toBeGreaterThan(30), { timeout: 10_000, interval: 5 });
    await b.kill();
    await writing;
    await vi.waitFor(
      () => {
        for (const c of channels) expect(seqs(client, c)).toEqual(upTo(300));
        expect(seqs(client, personalChannel('carol'))).toEqual(upTo(300));
      },
      { timeout: 30_000, interval: 50 },
    );
    await vi.waitFor(async () => expect(await remaining()).toBe(0), { timeout: 5_000 });
    // Rows node b had published but not deleted when it died, published again by node a and skipped.
    const repeated = await metric(a.url('/metrics'), 'switchboard_ingest_records_total', { outcome: 'duplicate' });
    console.log(`node b killed mid-stream: ${repeated} rows it had published came round again as duplicates`);
    b = await startNode('b');
  }, 60_000);

  it('loses and repeats nothing across a PostgreSQL restart, and says it failed meanwhile', async () => {
    const channels = ['restart.0', 'restart.1'];
    const client = await connect('dave', channels);
    await stream(channels, 0, 50, 10);
    await vi.waitFor(() => expect(seqs(client, 'restart.0').length).toBeGreaterThan(0), { timeout: 10_000, interval: 5 });
    await postgres.kill();
    // The nodes find it gone: a round fails and /readyz says so (the nodes keep serving clients).
    await vi.waitFor(
      async () => {
        const ready = (await (await fetch(a.url('/readyz'))).json()) as { status: string; ingest: Array<{ state: string }> };
        expect(ready.status).toBe('ready');
        expect(ready.ingest[0]?.state).toBe('failing');
      },
      { timeout: 15_000, interval: 100 },
    );
    await postgres.restart();
    await stream(channels, 50, 50, 10);
    await vi.waitFor(
      () => {
        for (const c of channels) expect(seqs(client, c)).toEqual(upTo(100));
      },
      { timeout: 30_000, interval: 50 },
    );
    await vi.waitFor(async () => expect(await remaining()).toBe(0), { timeout: 10_000 });
    await vi.waitFor(
      async () => {
        const ready = (await (await fetch(a.url('/readyz'))).json()) as { ingest: Array<{ state: string }> };
        expect(ready.ingest[0]?.state).toBe('running');
      },
      { timeout: 15_000, interval: 100 },
    );
  }, 90_000);
});
