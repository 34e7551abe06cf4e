/**
 * What a fuzz run must never cause, gathered where a test can assert it:
 * unhandled rejections and uncaught exceptions in this process, and
 * `internal` answers (a bug the node survived) in a node's metrics.
 */
import { afterAll, beforeAll } from 'vitest';
import type { Metrics } from '../../src/server/metrics.js';

/** Record unhandled rejections and uncaught exceptions while the file runs; `problems()` returns and clears them. */
export function watchProcess(): { problems: () => string[] } {
  const seen: string[] = [];
  const onRejection = (reason: unknown) => seen.push(`unhandled rejection: ${String(reason)}`);
  const onException = (err: Error) => seen.push(`uncaught exception: ${err.message}`);
  beforeAll(() => {
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtExceptionMonitor', onException);
  });
  afterAll(() => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtExceptionMonitor', onException);
  });
  return { problems: () => seen.splice(0) };
}

/** How many `internal` errors the node has answered (clients and server API together). */
export async function internalErrors(metrics: Metrics): Promise<number> {
  const { values } = await metrics.errors.get();
  return values.filter((v) => v.labels.code === 'internal').reduce((sum, v) => sum + v.value, 0);
}
