/**
 * Reads a `--broker` Redis URL into what the connections need:
 * `redis://[user:pass@]host[:port][/db]`, `rediss://…` (TLS) and
 * `redis+cluster://[user:pass@]h1:p1,h2:p2` (`rediss+cluster://` for TLS).
 * The query may carry `prefix=<text>` (the key and channel prefix, default
 * `sb`): several independent deployments (or tests) can share one Redis;
 * with TLS, also `tls-ca`, `tls-cert`, `tls-key` and `tls-servername`
 * (see ../tls.ts).
 */
import { readTlsParams, type BrokerTls } from '../tls.js';

export interface RedisEndpoint {
  host: string;
  port: number;
}

export interface RedisTarget {
  mode: 'standalone' | 'cluster';
  /** One endpoint for standalone; the seed nodes for a cluster. */
  endpoints: RedisEndpoint[];
  tls: boolean;
  /** The URL's TLS options, if any (only with `tls`). */
  tlsOptions?: BrokerTls;
  username?: string;
  password?: string;
  /** Database number (standalone only). */
  db: number;
  /** Prefix of every key and channel; `undefined` when the URL does not say. */
  prefix?: string;
}

const DEFAULT_PORT = 6379;
const SCHEMES: Readonly<Record<string, { mode: RedisTarget['mode']; tls: boolean }>> = {
  'redis:': { mode: 'standalone', tls: false },
  'rediss:': { mode: 'standalone', tls: true },
  'redis+cluster:': { mode: 'cluster', tls: false },
  'rediss+cluster:': { mode: 'cluster', tls: true },
};

/** Whether `spec` names a Redis broker (any of the schemes above). */
export function isRedisUrl(spec: string): boolean {
  const scheme = /^([a-z+]+:)\/\//i.exec(spec)?.[1]?.toLowerCase();
  return scheme !== undefined && scheme in SCHEMES;
}

/** Parses a Redis broker URL; throws an `Error` naming what is wrong (never echoing the password). */
export function parseRedisUrl(spec: string): RedisTarget {
  const m = /^([a-z+]+:)\/\/(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(\?[^#]*)?(#.*)?$/i.exec(spec);
  const scheme = SCHEMES[m?.[1]?.toLowerCase() ?? ''];
  if (!m || !scheme) throw new Error('not a redis://, rediss:// or redis+cluster:// URL');
  const [, , userinfo, hostList = '', path = '', query = ''] = m;

  const endpoints = hostList.split(',').map((h) => parseHostPort(h));
  if (endpoints.length === 0 || hostList === '') throw new Error('the Redis URL has no host');
  if (scheme.mode === 'standalone' && endpoints.length > 1) {
    throw new Error('a redis:// URL names one host: use redis+cluster://h1:p1,h2:p2 for a cluster');
  }

  const target: RedisTarget = { mode: scheme.mode, endpoints, tls: scheme.tls, db: 0 };
  if (userinfo) {
    const colon = userinfo.indexOf(':');
    const user = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
    const pass = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
    // `redis://:secret@host` is the classic password-only form.
    if (pass === undefined) target.password = user;
    else {
      if (user !== '') target.username = user;
      target.password = pass;
    }
  }
  const dbText = path.replace(/^\//, '');
  if (dbText !== '') {
    if (scheme.mode === 'cluster') throw new Error('a Redis Cluster has no database number');
    if (!/^\d{1,2}$/.test(dbText)) throw new Error(`"${dbText}" is not a database number`);
    target.db = Number(dbText);
  }
  const params = new URLSearchParams(query);
  const prefix = params.get('prefix');
  if (prefix !== null) target.prefix = prefix;
  const tlsOptions = readTlsParams(params, scheme.tls, scheme.mode === 'cluster' ? 'rediss+cluster://' : 'rediss://');
  if (tlsOptions !== undefined) target.tlsOptions = tlsOptions;
  return target;
}

function parseHostPort(text: string): RedisEndpoint {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?$/.exec(text);
  const port = m?.[2] === undefined ? DEFAULT_PORT : Number(m[2]);
  if (!m?.[1] || port < 1 || port > 65535) throw new Error(`"${text}" is not a host or host:port`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}
