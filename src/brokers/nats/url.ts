/**
 * Reads a `--broker` NATS URL: `nats://[user:pass@|token@]h1[:p1][,h2[:p2]…]`,
 * the servers being seeds of one NATS cluster (the client learns the others
 * from them). The query may carry `prefix=<text>` (the prefix of every
 * subject, stream and bucket, default `sb`: several deployments or tests can
 * share one NATS) and `replicas=<n>` (JetStream replicas of the streams and
 * the presence bucket, default 1; 3 in a 3-server cluster survives a server).
 */

export interface NatsTarget {
  /** `host:port` of each seed server. */
  servers: string[];
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
  return /^nats:\/\//i.test(spec);
}

/** Parses a NATS broker URL; throws an `Error` naming what is wrong (never echoing a password). */
export function parseNatsUrl(spec: string): NatsTarget {
  const m = /^nats:\/\/(?:([^@/?#]*)@)?([^/?#]*)\/?(\?[^#]*)?(#.*)?$/i.exec(spec);
  if (!m) throw new Error('not a nats://host:port URL');
  const [, userinfo, hostList = '', query = ''] = m;
  if (hostList === '') throw new Error('the NATS URL has no host');
  const target: NatsTarget = { servers: hostList.split(',').map(parseHostPort) };
  if (userinfo) {
    const colon = userinfo.indexOf(':');
    if (colon < 0) target.token = decodeURIComponent(userinfo);
    else {
      target.user = decodeURIComponent(userinfo.slice(0, colon));
      target.pass = decodeURIComponent(userinfo.slice(colon + 1));
    }
  }
  const params = new URLSearchParams(query);
  const prefix = params.get('prefix');
  if (prefix !== null) target.prefix = prefix;
  const replicas = params.get('replicas');
  if (replicas !== null) {
    if (!/^[1-5]$/.test(replicas)) throw new Error(`replicas=${replicas}: JetStream replicas are 1 to 5`);
    target.replicas = Number(replicas);
  }
  return target;
}

function parseHostPort(text: string): string {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?$/.exec(text);
  const port = m?.[2] === undefined ? DEFAULT_PORT : Number(m[2]);
  if (!m?.[1] || port < 1 || port > 65535) throw new Error(`"${text}" is not a host or host:port`);
  return `${m[1]}:${port}`;
}
