/**
 * What `--ingest <url>` names: a source of publications a node reads by
 * itself. Parsed once, here, for the settings check (a bad URL is refused
 * at start with a line that says why) and for the node that runs it.
 *
 * `postgres://user:pass@host:5432/db?table=outbox` — a transactional
 * outbox (see outbox.ts). Parameters of ours, taken off before the URL
 * reaches the PostgreSQL client: `table` (required; `name` or
 * `schema.name`), `poll` (ms between polls when no notification comes,
 * 50–60000, default 1000), `batch` (rows per claim, 1–1000, default 100),
 * `lanes` (1–1024, default 16: how many nodes can work at once; every row of
 * a channel is in one lane), `dead` (a table that receives rows that are not
 * valid commands; without it they are logged, counted and dropped) and
 * `stuck` (seconds, 1–86400, default 60: an unpublished row older than this
 * marks the ingest stuck in /readyz and the metrics).
 *
 * `kafka://host:9092[,host2:9092…]/<topic>?group=<id>` — a Kafka topic read
 * by a consumer group of the cluster's nodes (see kafka.ts). Parameters:
 * `group` (the consumer group, default `switchboard`), `dead` (a topic that
 * receives records that are not valid commands; without it they are logged,
 * counted and skipped), `from` (`earliest`, the default, or `latest`: where
 * a group without committed offsets starts) and `stuck` (as above).
 */
import { redactBroker } from '../config/broker.js';

export interface OutboxSource {
  kind: 'postgres';
  /** The connection string for the PostgreSQL client: the URL without our parameters. */
  connection: string;
  /** The outbox table as given (`outbox`, `app.outbox`). */
  table: string;
  /** Rows that are not valid commands go here (same layout plus `error`, `failed_at`); none: logged and dropped. */
  dead: string | undefined;
  pollMs: number;
  batch: number;
  lanes: number;
  stuckSeconds: number;
  /** How logs, metrics and /readyz name it: no password. */
  label: string;
}

export interface KafkaSource {
  kind: 'kafka';
  /** host:port of each seed broker. */
  brokers: string[];
  topic: string;
  group: string;
  /** Records that are not valid commands go to this topic; none: logged and skipped. */
  dead: string | undefined;
  from: 'earliest' | 'latest';
  stuckSeconds: number;
  label: string;
}

export type IngestSource = OutboxSource | KafkaSource;

/** A Kafka topic or group name: what Kafka itself accepts. */
const KAFKA_NAME = /^[A-Za-z0-9._-]{1,249}$/;
const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9A-Fa-f:]+\]:\d{1,5}$/;

/** `name` or `schema.name`, each a plain SQL identifier (no quoting needed, none allowed). */
const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;

const NUMBERS = {
  poll: { min: 50, max: 60_000, fallback: 1000 },
  batch: { min: 1, max: 1000, fallback: 100 },
  lanes: { min: 1, max: 1024, fallback: 16 },
  stuck: { min: 1, max: 86_400, fallback: 60 },
} as const;

export type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

export const INGEST_FORMS = 'postgres://user:pass@host:5432/db?table=outbox or kafka://host:9092/<topic>?group=<id> (see docs/ingest.md)';

/** Parse one `--ingest` value. */
export function parseIngest(value: string): Parsed<IngestSource> {
  if (value.startsWith('kafka://')) return parseKafka(value);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, problem: 'not a URL' };
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') return { ok: false, problem: `unknown scheme ${url.protocol}` };
  const table = url.searchParams.get('table');
  if (table === null) return { ok: false, problem: 'needs ?table=<outbox table>' };
  if (!TABLE.test(table)) return { ok: false, problem: `table "${table.slice(0, 80)}" must be name or schema.name (letters, digits, _)` };
  const dead = url.searchParams.get('dead') ?? undefined;
  if (dead !== undefined && (!TABLE.test(dead) || dead === table)) return { ok: false, problem: 'dead must be another table, name or schema.name' };
  const numbers: Partial<Record<keyof typeof NUMBERS, number>> = {};
  for (const [name, { min, max, fallback }] of Object.entries(NUMBERS) as Array<[keyof typeof NUMBERS, (typeof NUMBERS)[keyof typeof NUMBERS]]>) {
    const raw = url.searchParams.get(name);
    const n = raw === null ? fallback : Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) return { ok: false, problem: `${name} must be a whole number from ${min} to ${max}` };
    numbers[name] = n;
  }
  for (const name of ['table', 'dead', ...Object.keys(NUMBERS)]) url.searchParams.delete(name);
  const label = `postgres://${url.host}${url.pathname}/${table}`;
  return {
    ok: true,
    value: {
      kind: 'postgres',
      connection: url.toString(),
      table,
      dead,
      pollMs: numbers.poll ?? NUMBERS.poll.fallback,
      batch: numbers.batch ?? NUMBERS.batch.fallback,
      lanes: numbers.lanes ?? NUMBERS.lanes.fallback,
      stuckSeconds: numbers.stuck ?? NUMBERS.stuck.fallback,
      label,
    },
  };
}

/** `kafka://h1:9092,h2:9092/<topic>?…`: several hosts, which `URL` cannot read, so by hand. */
function parseKafka(value: string): Parsed<KafkaSource> {
  const rest = value.slice('kafka://'.length);
  const slash = rest.indexOf('/');
  const query = rest.indexOf('?');
  if (slash < 0 || (query >= 0 && query < slash)) return { ok: false, problem: 'needs a topic: kafka://host:9092/<topic>' };
  const brokers = rest.slice(0, slash).split(',');
  if (brokers.some((b) => !HOST_PORT.test(b))) return { ok: false, problem: 'brokers must be host:port, comma-separated' };
  const topic = decodeURIComponent(rest.slice(slash + 1, query < 0 ? undefined : query));
  if (!KAFKA_NAME.test(topic)) return { ok: false, problem: `topic "${topic.slice(0, 80)}" must be 1-249 characters of A-Za-z0-9._-` };
  const params = new URLSearchParams(query < 0 ? '' : rest.slice(query + 1));
  const group = params.get('group') ?? 'switchboard';
  if (!KAFKA_NAME.test(group)) return { ok: false, problem: 'group must be 1-249 characters of A-Za-z0-9._-' };
  const dead = params.get('dead') ?? undefined;
  if (dead !== undefined && (!KAFKA_NAME.test(dead) || dead === topic)) return { ok: false, problem: 'dead must be another topic' };
  const from = params.get('from') ?? 'earliest';
  if (from !== 'earliest' && from !== 'latest') return { ok: false, problem: 'from must be earliest or latest' };
  const stuck = params.get('stuck') === null ? NUMBERS.stuck.fallback : Number(params.get('stuck'));
  if (!Number.isInteger(stuck) || stuck < NUMBERS.stuck.min || stuck > NUMBERS.stuck.max) return { ok: false, problem: `stuck must be a whole number from ${NUMBERS.stuck.min} to ${NUMBERS.stuck.max}` };
  const unknown = [...params.keys()].filter((k) => !['group', 'dead', 'from', 'stuck'].includes(k));
  if (unknown.length > 0) return { ok: false, problem: `unknown parameter ${unknown[0]}` };
  return { ok: true, value: { kind: 'kafka', brokers, topic, group, dead, from, stuckSeconds: stuck, label: `kafka://${brokers.join(',')}/${topic}` } };
}

/** The settings check: what is wrong with `value`, or undefined. */
export function checkIngest(value: string): string | undefined {
  const parsed = parseIngest(value);
  return parsed.ok ? undefined : `${parsed.problem}: ${INGEST_FORMS}`;
}

/** `value` with its password hidden, for messages: the broker URLs' rule (kafka:// URLs carry none). */
export function redactIngest(value: string): string {
  return redactBroker(value);
}
