/**
 * `GET /metrics` (Prometheus text), on the main port or, with
 * `--metrics-port`, on a listener of its own that serves nothing else, so
 * that the main port can face the internet while only the scraper reaches
 * the metrics.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ErrorCode } from '../../protocol/index.js';
import type { Metrics } from '../metrics.js';
import { hardenServer, type HardenOptions } from './harden.js';
import { isNormalPath } from './path.js';
import { sendError } from './respond.js';
import { requestUrl } from './admit.js';

/** Answers with the node's metrics. */
export async function sendMetrics(res: ServerResponse, metrics: Metrics): Promise<void> {
  const text = await metrics.registry.metrics();
  res.writeHead(200, { 'content-type': metrics.registry.contentType });
  res.end(text);
}

/** The `--metrics-port` listener, hardened like the main one; not listening yet. */
export function createMetricsServer(metrics: Metrics, options: HardenOptions, log: Logger): Server {
  const server = createServer((req, res) => {
    const url = requestUrl(req.url);
    if (url?.pathname !== '/metrics' || !isNormalPath(req.url, url) || (req.method !== 'GET' && req.method !== 'HEAD')) {
      return sendError(res, { code: ErrorCode.NotFound, message: 'this listener serves GET /metrics only' });
    }
    sendMetrics(res, metrics).catch((err: unknown) => {
      log.error({ err }, 'metrics request failed');
      res.destroy();
    });
  });
  hardenServer(server, options);
  return server;
}
