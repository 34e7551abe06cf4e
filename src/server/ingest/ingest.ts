/**
 * What every `--ingest` source is to the node, and what the sources share:
 * how a record's failure is judged (the record's own fault, or one that may
 * pass) and how a source reports itself.
 */
import { ErrorCode, SwitchboardError } from '../../protocol/index.js';
import type { PublishReceipt } from '../../brokers/broker.js';
import type { ServerCommands } from '../core/commands.js';
import type { Metrics } from '../metrics.js';

/** The commands an ingest publishes through: the in-process server API, with its checks. */
export type IngestCommands = Pick<ServerCommands, 'publish' | 'send'>;

/** How long an ingest waits before trying again, growing from the first to the second with each failure in a row. */
export const RETRY_MIN_MS = 100;
export const RETRY_MAX_MS = 5_000;

/** Idempotency keys are at most 128 characters: the source's name in a key is cut to this, to leave room for any coordinates. */
export const KEY_NAME_CHARS = 80;

/** How a record ended: published, published before (its key answered "duplicate"), or not a valid command. */
export type Outcome = 'published' | 'duplicate' | 'dead';

/** What a record asks for: a publish to a channel, or a send to a user. */
export type Target = { channel: string } | { user: string };

/** Publish a record's data with its idempotency key; the outcome once it is stored. Throws what the commands throw. */
export async function publishRecord(commands: IngestCommands, target: Target, data: unknown, idempotencyKey: string): Promise<Exclude<Outcome, 'dead'>> {
  const receipt: PublishReceipt = 'channel' in target ? await commands.publish(target.channel, data, { idempotencyKey }) : await commands.send(target.user, data, { idempotencyKey });
  return receipt.duplicate === true ? 'duplicate' : 'published';
}

/** What an ingest reports in /readyz. */
export interface IngestStatus {
  source: string;
  /** `running`; `stuck`: a record has waited longer than the source's `stuck` seconds; `failing`: the last attempt failed. */
  state: 'running' | 'stuck' | 'failing';
  /** Age of the oldest record not yet published, in seconds, when last looked (null: none, or not known yet). */
  oldestSeconds: number | null;
  error?: string;
}

export interface Ingest {
  /** Connect and begin; a source that is down is retried in the background. */
  start(): Promise<void>;
  status(): IngestStatus;
  /** Stop taking records; what was taken and published is acknowledged to the source. */
  close(): Promise<void>;
}

/** Errors of the record itself: publishing it again cannot succeed, so it is dead-lettered and the rest goes on. */
export function isPoison(err: unknown): boolean {
  return err instanceof SwitchboardError && (err.code === ErrorCode.BadRequest || err.code === ErrorCode.TooLarge);
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The status from what a source knows: failing beats stuck beats running. */
export function statusOf(source: string, error: string | undefined, oldestSeconds: number | null, stuckSeconds: number): IngestStatus {
  const state = error !== undefined ? 'failing' : oldestSeconds !== null && oldestSeconds > stuckSeconds ? 'stuck' : 'running';
  return { source, state, oldestSeconds, ...(error !== undefined ? { error } : {}) };
}

/** A source's series at zero from its start, so that dashboards and alerts see it before its first record or failure. */
export function zeroMetrics(metrics: Metrics, source: string): void {
  metrics.ingestRead.inc({ source }, 0);
  for (const outcome of ['published', 'duplicate', 'dead'] satisfies Outcome[]) metrics.ingestRecords.inc({ source, outcome }, 0);
  metrics.ingestFailures.inc({ source }, 0);
  metrics.ingestOldest.set({ source }, 0);
  metrics.ingestStuck.set({ source }, 0);
}
