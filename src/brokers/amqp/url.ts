/**
 * Reads a `--broker` RabbitMQ URL:
 * `amqp[s]://[user:pass@]host[:port][/vhost]?store=<redis URL>[&prefix=<text>]`.
 *
 * `store` (required) names the Redis that keeps history, offsets, presence
 * and the registry: `redis://…`, `rediss://…` or `redis+cluster://h1:p1,h2:p2`,
 * percent-encoded or not. Unencoded it runs to the next `&`, so a store URL
 * with a query of its own must be encoded. `prefix` (default `sb`) prefixes
 * exchange, queue and key names. With `amqps://`, `tls-ca`, `tls-cert`,
 * `tls-key` and `tls-servername` configure the TLS socket (see ../tls.ts).
 * Every other query parameter (`heartbeat`, `frameMax`, …) is left for the
 * AMQP client.
 */
import { parseRedisUrl, type RedisTarget } from '../redis/url.js';
import { isTlsParam, readTlsParams, type BrokerTls } from '../tls.js';

export interface AmqpTarget {
  /** The URL handed to the AMQP client: ours without `store` and `prefix`. */
  url: string;
  /** `host:port`, for messages (never the credentials). */
  where: string;
  /** `undefined` when the URL has no `store` (the broker refuses that). */
  store?: RedisTarget;
  /** `undefined` when the URL does not say. */
  prefix?: string;
  /** The URL's TLS options, if any (only with `amqps://`). */
  tlsOptions?: BrokerTls;
}

export const STORE_REQUIRED =
  'the RabbitMQ broker keeps history and presence in Redis: add ?store=redis://host:6379';

/** Whether `spec` names a RabbitMQ broker. */
export function isAmqpUrl(spec: string): boolean {
  return /^amqps?:\/\//i.test(spec);
}

/** `decodeURIComponent`, but a `+` stays a `+` (`redis+cluster://`) and a stray `%` is kept as is. */
function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Parses a RabbitMQ broker URL; throws an `Error` naming what is wrong (never echoing a password). */
export function parseAmqpUrl(spec: string): AmqpTarget {
  const m = /^(amqps?):\/\/([^?#]*)(?:\?([^#]*))?(#.*)?$/i.exec(spec);
  if (!m) throw new Error('not an amqp:// or amqps:// URL');
  const [, scheme = 'amqp', authority = '', query = ''] = m;
  const host = /^(?:[^@/]*@)?([^/]*)/.exec(authority)?.[1] ?? '';
  if (host === '') throw new Error('the RabbitMQ URL has no host');

  const kept: string[] = [];
  let store: string | undefined;
  let prefix: string | undefined;
  const tlsParams = new URLSearchParams();
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = decode(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : decode(part.slice(eq + 1));
    if (key === 'store') store = value;
    else if (key === 'prefix') prefix = value;
    else if (isTlsParam(key)) tlsParams.set(key, value);
    else kept.push(part);
  }
  let target: RedisTarget | undefined;
  if (store !== undefined && store !== '') {
    try {
      target = parseRedisUrl(store);
    } catch (err) {
      throw new Error(`?store= of the RabbitMQ URL: ${(err as Error).message}`);
    }
  }
  const port = /:(\d+)$/.test(host) ? '' : scheme.toLowerCase() === 'amqps' ? ':5671' : ':5672';
  const out: AmqpTarget = {
    url: `${scheme}://${authority}${kept.length > 0 ? `?${kept.join('&')}` : ''}`,
    where: `${host}${port}`,
  };
  if (target) out.store = target;
  if (prefix !== undefined) out.prefix = prefix;
  const tlsOptions = readTlsParams(tlsParams, scheme.toLowerCase() === 'amqps', 'amqps://');
  if (tlsOptions !== undefined) out.tlsOptions = tlsOptions;
  return out;
}
