/**
 * What the primary and its workers tell each other besides broker traffic
 * (that goes in `sbipc` envelopes, see brokers/ipc/wire.ts), on the same
 * IPC channel, under a key of its own.
 */

/** Worker → primary: the node is started and listening. */
export interface UpMessage {
  sbworker: 'up';
  node: string;
  port: number;
}

/** Primary → worker: drain, as on SIGTERM. */
export interface DrainMessage {
  sbworker: 'drain';
}

export type WorkerControl = UpMessage | DrainMessage;

/** The control message `value` is, or null for anything else on the channel. */
export function asWorkerControl(value: unknown): WorkerControl | null {
  if (typeof value !== 'object' || value === null || !('sbworker' in value)) return null;
  const m = value as Record<string, unknown>;
  if (m.sbworker === 'drain') return { sbworker: 'drain' };
  if (m.sbworker === 'up' && typeof m.node === 'string' && typeof m.port === 'number') return { sbworker: 'up', node: m.node, port: m.port };
  return null;
}

/**
 * Environment variables the primary hands each worker. Not `SWITCHBOARD_*`:
 * those are settings, and the configuration loader warns about unknown ones.
 */
/** The worker's slot, 1…N: lets tools that look through /proc tell the workers apart. */
export const WORKER_INDEX_ENV = 'SB_WORKER_INDEX';
/** The worker's node id, `<id>-w<i>`; set only when the node id was given. */
export const WORKER_NODE_ID_ENV = 'SB_WORKER_NODE_ID';
