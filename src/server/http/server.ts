/**
 * The node's listening server: plain HTTP, or HTTPS (and so WSS) when the
 * node has `tlsCert` and `tlsKey`. The certificate can be replaced while the
 * node runs (SIGHUP): new handshakes get the new one, connections already
 * open keep theirs.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { readTlsPair, type TlsFiles, type TlsPair } from '../config/tls-files.js';

export type NodeServer = HttpServer | HttpsServer;

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const readUtf8 = (path: string): string => readFileSync(path, 'utf8');

/** The files of a node's TLS pair, or undefined for plain HTTP. */
export function tlsFilesOf(options: { tlsCert?: string; tlsKey?: string }): TlsFiles | undefined {
  if (options.tlsCert === undefined && options.tlsKey === undefined) return undefined;
  if (options.tlsCert === undefined || options.tlsKey === undefined) throw new Error('TLS needs both tlsCert and tlsKey');
  return { cert: options.tlsCert, key: options.tlsKey };
}

/** The pair's PEM text, read and checked; throws `ConfigError` saying which file is wrong. */
export function readTlsFiles(tls: TlsFiles): TlsPair {
  return readTlsPair(tls, readUtf8);
}

/** An HTTP server, or an HTTPS one serving `tls`. */
export function createNodeServer(handler: RequestHandler, tls: TlsPair | undefined): NodeServer {
  return tls === undefined ? createHttpServer(handler) : createHttpsServer(tls, handler);
}

/**
 * Reads the pair again and gives it to `server` for new handshakes. A file
 * that is missing, unreadable or mismatched keeps the current certificate
 * and logs why: a reload never leaves the node without one. Returns whether
 * the new pair is in use.
 */
export function reloadTls(server: NodeServer, tls: TlsFiles | undefined, log: Logger): boolean {
  if (tls === undefined || !('setSecureContext' in server)) {
    log.warn('TLS reload asked for, but this node serves plain HTTP (no --tls-cert and --tls-key)');
    return false;
  }
  try {
    server.setSecureContext(readTlsFiles(tls));
  } catch (err) {
    log.error({ err: err instanceof Error ? err.message : String(err) }, 'TLS reload failed: keeping the current certificate');
    return false;
  }
  log.info({ cert: tls.cert }, 'TLS certificate reloaded');
  return true;
}
