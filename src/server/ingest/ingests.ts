/**
 * The `--ingest` sources of one node: started once the node serves, stopped
 * first when it drains (so that it takes no new rows it might not finish),
 * and reported in /readyz.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { IngestCommands, IngestStatus } from './ingest.js';
import { KafkaIngest } from './kafka.js';
import { OutboxIngest } from './outbox.js';
import { parseIngest } from './source.js';

export interface Ingests {
  /** Connect and begin (a source that is down is retried in the background). */
  start(): Promise<void>;
  /** One per source; empty without `--ingest`. */
  status(): IngestStatus[];
  close(): Promise<void>;
}

/** Parses every URL now, so that a bad one fails the node before it listens. */
export function createIngests(urls: readonly string[], commands: IngestCommands, metrics: Metrics, log: Logger, nodeId: string): Ingests {
  const sources = urls.map((url) => {
    const parsed = parseIngest(url);
    // The settings check refused these already; a program passing options directly gets the same words.
    if (!parsed.ok) throw new Error(`--ingest: ${parsed.problem}`);
    const source = parsed.value;
    return source.kind === 'postgres' ? new OutboxIngest(source, commands, metrics, log) : new KafkaIngest(source, commands, metrics, log, nodeId);
  });
  return {
    start: async () => {
      await Promise.all(sources.map((s) => s.start()));
    },
    status: () => sources.map((s) => s.status()),
    close: async () => {
      await Promise.all(sources.map((s) => s.close()));
    },
  };
}
