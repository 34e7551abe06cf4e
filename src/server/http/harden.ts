/**
 * Limits every HTTP(S) server of a node gets, whatever it serves: sockets
 * that say nothing, headers that trickle in, and how many connections are
 * open at once. One function, so that each server the node creates (the
 * main one, the metrics listener, a TLS one) is hardened the same way.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Limits, NodeOptions } from '../options.js';

/** Connections past `--max-connections` the server still takes: API calls, scrapes, health checks, upgrades being refused. */
export const TCP_CONNECTION_SLACK = 1024;
/** The longest a request (headers and body) may take to arrive, whatever `--headers-timeout` says. */
const REQUEST_TIMEOUT_MS = 60_000;
/** Keep-alive connections between requests close after this long (Node's own default), or sooner with a shorter idle timeout. */
const KEEP_ALIVE_MS = 5000;

/** The settings `hardenServer` reads. */
export type HardenOptions = Pick<NodeOptions, 'httpIdleTimeout' | 'headersTimeout' | 'maxTcpConnections'> & { limits: Pick<Limits, 'maxConnections'> };

/** The TCP connections a node's server keeps open at most: `--max-tcp-connections`, else `--max-connections` + slack. */
export function maxTcpConnections(options: Pick<HardenOptions, 'maxTcpConnections' | 'limits'>): number {
  return options.maxTcpConnections ?? options.limits.maxConnections + TCP_CONNECTION_SLACK;
}

/**
 * Applies the timeouts and the connection cap to `server`; call it before
 * `listen`. A socket silent both ways for `--http-idle-timeout` before its
 * first request or upgrade is closed (after the upgrade `ws` lifts the
 * timeout, and the heartbeat takes over); headers not complete within
 * `--headers-timeout` get 408 and the socket is closed, checked a few times
 * per timeout; past the cap, new sockets are closed at once.
 */
export function hardenServer(server: Server, options: HardenOptions): void {
  const idleMs = options.httpIdleTimeout * 1000;
  const headersMs = options.headersTimeout * 1000;
  server.timeout = idleMs;
  server.keepAliveTimeout = Math.min(KEEP_ALIVE_MS, idleMs);
  server.headersTimeout = headersMs;
  server.requestTimeout = Math.max(REQUEST_TIMEOUT_MS, headersMs);
  // Read when the server starts listening; Node's default (30 s) would let a slow sender keep its socket 3× the timeout.
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.max(250, Math.min(headersMs / 4, 30_000));
  server.maxConnections = maxTcpConnections(options);
  // Silence while the node works on an answer (a publish waiting out --publish-deadline) is not idleness.
  // Node's own keep-alive timeout takes over once the answer is sent, as it does for later requests.
  server.on('request', (req: IncomingMessage) => req.socket.setTimeout(0));
}

/** Node's own key of a socket's idle timer (`kTimeout` of `net`), found on the first socket that has one. */
let timerKey: symbol | undefined;

/**
 * Lets go of the idle timer the server's `timeout` gave `socket`, once it
 * is stopped (`setTimeout(0)`, which `ws` calls after the upgrade): Node
 * keeps the stopped timer, some 120 bytes, on the socket for the rest of
 * its life, and a node holds 100k long-lived sockets.
 */
export function dropIdleTimer(socket: object): void {
  timerKey ??= Object.getOwnPropertySymbols(socket).find((key) => key.description === 'timeout');
  if (timerKey === undefined) return;
  const slots = socket as Record<symbol, unknown>;
  const timer = slots[timerKey] as { _destroyed?: boolean } | null | undefined;
  if (timer?._destroyed === true) slots[timerKey] = null;
}
