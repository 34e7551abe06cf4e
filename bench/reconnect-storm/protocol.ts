// The commands the benchmark sends its client processes (IPC, through
// lib/workers.ts) and the reply each one gets.
import type { FleetBackoff, StormRecord } from '../../test/helpers/client-fleet.js';

export type ToChild =
  | { type: 'start'; users: string[]; firstUrl: string; reconnectUrls: string[]; backoff: FleetBackoff; connectRate: number; timeoutMs: number }
  | { type: 'arm' }
  | { type: 'reconnected' }
  | { type: 'distinct' }
  | { type: 'records' }
  | { type: 'cpu' }
  | { type: 'close' };

export interface ReplyOf {
  start: Record<string, never>;
  arm: Record<string, never>;
  reconnected: { count: number };
  distinct: { counts: number[] };
  records: { records: StormRecord[]; cpuMs: number };
  cpu: { ms: number };
  close: Record<string, never>;
}

/** The argument that makes the bundled benchmark run as a client process. */
export const CHILD_FLAG = '--storm-child';
