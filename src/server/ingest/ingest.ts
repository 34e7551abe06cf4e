/**
 * What every `--ingest` source is to the node, and what the sources share:
 * how a record's failure is judged (the record's own fault, or one that may
 * pass) and how a source reports itself.
 */
import { ErrorCode, SwitchboardError } from '../../protocol/index.js';
import type { ServerCommands } from '../core/commands.js';
import type { Metrics } from '../metrics.js';

/** The commands an ingest publishes through: the in-process server API, with its checks. */
export type IngestCommands = Pick<ServerCommands, 'publish' | 'send'>;

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
  for (const outcome of ['published', 'duplicate', 'dead']) metrics.ingestRecords.inc({ source, outcome }, 0);
  metrics.ingestFailures.inc({ source }, 0);
  metrics.ingestOldest.set({ source }, 0);
  metrics.ingestStuck.set({ source }, 0);
}
