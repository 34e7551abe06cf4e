// The messages between the benchmark and its client processes (IPC), one
// request and one answer at a time per process.
import type { FleetBackoff, StormRecord } from '../../test/helpers/client-fleet.js';

export type ToChild =
  | { type: 'start'; users: string[]; firstUrl: string; reconnectUrls: string[]; backoff: FleetBackoff; connectRate: number; timeoutMs: number }
  | { type: 'arm' }
  | { type: 'reconnected' }
  | { type: 'distinct' }
  | { type: 'records' }
  | { type: 'cpu' }
  | { type: 'close' };

export type FromChild =
  | { type: 'started' }
  | { type: 'armed' }
  | { type: 'reconnected'; count: number }
  | { type: 'distinct'; counts: number[] }
  | { type: 'records'; records: StormRecord[]; cpuMs: number }
  | { type: 'cpu'; ms: number }
  | { type: 'closed' }
  | { type: 'failed'; message: string };

/** The argument that makes the bundled benchmark run as a client process. */
export const CHILD_FLAG = '--storm-child';
