/**
 * TLS options of a broker URL, the same for every broker: the query
 * parameters `tls-ca`, `tls-cert`, `tls-key` (PEM file paths) and
 * `tls-servername`. They apply to the TLS connection a TLS scheme asks for
 * (`rediss://`, `rediss+cluster://`, `tls://` for NATS, `amqps://`); given
 * with a plain scheme they are an error, never silently unused.
 */
import { readFileSync } from 'node:fs';

/** The TLS parameters of a broker URL, as given (paths, not contents). */
export interface BrokerTls {
  /** PEM file of the CA(s) to trust instead of the system's. */
  ca?: string;
  /** PEM file of the client certificate (mutual TLS); needs `key`. */
  cert?: string;
  /** PEM file of the client certificate's private key; needs `cert`. */
  key?: string;
  /** The name the server's certificate must carry (SNI), when it is not the URL's host. */
  servername?: string;
}

/** What Node's `tls.connect` takes from `BrokerTls`: the files' PEM text. */
export interface TlsConnectOptions {
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
}

/** Query parameter → field. */
const PARAMS: Readonly<Record<string, keyof BrokerTls>> = {
  'tls-ca': 'ca',
  'tls-cert': 'cert',
  'tls-key': 'key',
  'tls-servername': 'servername',
};

/** Whether a query parameter is one of the TLS options (so that a URL handed on to a client library can drop it). */
export function isTlsParam(name: string): boolean {
  return name in PARAMS;
}

/**
 * The TLS options in `params`, or undefined when there are none. `secure`
 * says whether the URL's scheme asked for TLS; `scheme` names that scheme
 * for the message. Throws an `Error` for options without TLS, a certificate
 * without its key (or the reverse), or an empty value.
 */
export function readTlsParams(params: URLSearchParams, secure: boolean, scheme: string): BrokerTls | undefined {
  const tls: BrokerTls = {};
  for (const [name, field] of Object.entries(PARAMS)) {
    const value = params.get(name);
    if (value === null) continue;
    if (value === '') throw new Error(`${name}= is empty: give a ${field === 'servername' ? 'host name' : 'PEM file path'}`);
    tls[field] = value;
  }
  if (Object.keys(tls).length === 0) return undefined;
  if (!secure) throw new Error(`tls-* options need a TLS URL: use ${scheme}`);
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new Error('tls-cert and tls-key go together (a client certificate and its key)');
  return tls;
}

/** The files' contents for `tls.connect`; throws an `Error` naming the option and the file that cannot be read. */
export function tlsConnectOptions(tls: BrokerTls | undefined): TlsConnectOptions {
  const out: TlsConnectOptions = {};
  if (tls === undefined) return out;
  for (const field of ['ca', 'cert', 'key'] as const) {
    const path = tls[field];
    if (path === undefined) continue;
    try {
      out[field] = readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`tls-${field}=${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  if (tls.servername !== undefined) out.servername = tls.servername;
  return out;
}
