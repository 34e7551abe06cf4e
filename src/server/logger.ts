/** Structured logs (pino) with the node id on every line. */
import { pino, type Logger } from 'pino';
import type { LogLevel } from './options.js';

export function createLogger(nodeId: string, level: LogLevel): Logger {
  return pino({ level, base: { node: nodeId } });
}
