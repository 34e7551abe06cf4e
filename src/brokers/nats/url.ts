/**
 * Reads a `--broker` NATS URL: `nats://[user:pass@|token@]h1[:p1][,h2[:p2]…]`,
 * the servers being seeds of one NATS cluster (the client learns the others
 * from them); `tls://…` is the same over TLS, which the query's `tls-ca`,
 * `tls-cert`, `tls-key` and `tls-servername` configure (see ../tls.ts). The query may carry `prefix=<text>` (the prefix of every
 * subject, stream and bucket, default `sb`: several deployments or tests can
 * share one NATS) and `replicas=<n>` (JetStream replicas of the streams and
 * the presence bucket, default 1; 3 in a 3-server cluster survives a server).
 */

import { readTlsParams, tlsConnectOptions, type BrokerTls, type TlsConnectOptions } from '../tls.js';

export interface NatsTarget {
  /** `host:port` of each seed server. */
  servers: string[];
  /** `tls://`: the connection must be TLS. */
  tls?: boolean;
  /** The URL's TLS options, if any (only with `tls`). */
  tlsOptions?: BrokerTls;
  user?: string;
  pass?: string;
  token?: string;
  /** `undefined` when the URL does not say. */
  prefix?: string;
  /** `undefined` when the URL does not say. */
  replicas?: number;
}

const DEFAULT_PORT = 4222;

/** Whether `spec` names a NATS broker. */
export function isNatsUrl(spec: string): boolean {
  return /^(nats|tls):\/\//i.test(spec);
}

/** Parses a NATS broker URL; throws an `Error` naming what is wrong (never echoing a password). */
export function parseNatsUrl(spec: string): NatsTarget {
  const m = /^(nats|tls):\/\/(?:([^@/?#]*)@)?([^/?#]*)\/?(\?[^#]*)?(#.*)?$/i.exec(spec);
  if (!m) throw new Error('not a nats://host:port or tls://host:port URL');
  const [, scheme = 'nats', userinfo, hostList = '', query = ''] = m;
  if (hostList === '') throw new Error('the NATS URL has no host');
  const target: NatsTarget = { servers: hostList.split(',').map(parseHostPort) };
  const params = new URLSearchParams(query);
  if (scheme.toLowerCase() === 'tls') target.tls = true;
  const tlsOptions = readTlsParams(params, target.tls === true, 'tls://host:4222');
  if (tlsOptions !== undefined) target.tlsOptions = tlsOptions;
  if (userinfo) {
    const colon = userinfo.indexOf(':');
    if (colon < 0) target.token = decodeURIComponent(userinfo);
    else {
      target.user = decodeURIComponent(userinfo.slice(0, colon));
      target.pass = decodeURIComponent(userinfo.slice(colon + 1));
    }
  }
  const prefix = params.get('prefix');
  if (prefix !== null) target.prefix = prefix;
  const replicas = params.get('replicas');
  if (replicas !== null) {
    if (!/^[1-5]$/.test(replicas)) throw new Error(`replicas=${replicas}: JetStream replicas are 1 to 5`);
    target.replicas = Number(replicas);
  }
  return target;
}

/** The servers, credentials and TLS options `connect` takes for `target`, the same for the broker and for tools; reads the TLS files. */
export function natsConnectOptions(target: NatsTarget): {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  tls?: TlsConnectOptions;
} {
  return {
    servers: target.servers,
    ...(target.user === undefined ? {} : { user: target.user, pass: target.pass ?? '' }),
    ...(target.token === undefined ? {} : { token: target.token }),
    ...(target.tls === true ? { tls: tlsConnectOptions(target.tlsOptions) } : {}),
  };
}

function parseHostPort(text: string): string {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?$/.exec(text);
  const port = m?.[2] === undefined ? DEFAULT_PORT : Number(m[2]);
  if (!m?.[1] || port < 1 || port > 65535) throw new Error(`"${text}" is not a host or host:port`);
  return `${m[1]}:${port}`;
}
