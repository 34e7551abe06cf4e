/**
 * What a `--broker` value names: `memory`, or a URL whose scheme picks the
 * broker. Only the form is checked here; whether this build can run that
 * broker is decided in `availability.ts`.
 */

export type BrokerKind = 'memory' | 'redis' | 'redis-cluster' | 'nats' | 'amqp';

/** The result of reading a broker value: its kind, or what is wrong with it. */
export type BrokerCheck = { ok: true; kind: BrokerKind } | { ok: false; problem: string };

const SCHEMES: Readonly<Record<string, BrokerKind>> = {
  'redis:': 'redis',
  'rediss:': 'redis',
  'nats:': 'nats',
  'tls:': 'nats',
  'amqp:': 'amqp',
  'amqps:': 'amqp',
};

const CLUSTER_SCHEMES = ['redis+cluster://', 'rediss+cluster://'];
const HOST_PORT_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;
const HOST_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)$/;

/** How to write a broker value, appended to every broker problem. */
export const BROKER_FORMS =
  'use memory, redis://host:6379, rediss://…, redis+cluster://h1:p1,h2:p2, rediss+cluster://…, nats://host:4222, amqp://host:5672 or amqps://…';

/** Reads a broker value; never throws. */
export function checkBroker(value: string): BrokerCheck {
  if (value === 'memory') return { ok: true, kind: 'memory' };
  const cluster = CLUSTER_SCHEMES.find((scheme) => value.toLowerCase().startsWith(scheme));
  if (cluster) return checkCluster(value.slice(cluster.length));
  // A NATS seed list: the URL parser cannot read it either.
  if (/^(nats|tls):\/\/[^/?#]*,/i.test(value)) return checkNatsSeeds(value.slice(value.indexOf('//') + 2));
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, problem: 'is not memory or a URL' };
  }
  const kind = SCHEMES[url.protocol];
  if (kind === undefined) return { ok: false, problem: `has an unknown scheme ${url.protocol.slice(0, -1)}` };
  if (url.hostname === '') return { ok: false, problem: 'has no host' };
  return { ok: true, kind };
}

/** `redis+cluster://[user:pass@]h1:p1,h2:p2[/…][?…]` (or `rediss+cluster://` for TLS): a list the URL parser cannot read, so it is checked here. */
function checkCluster(rest: string): BrokerCheck {
  const at = rest.lastIndexOf('@');
  const hosts = (at >= 0 ? rest.slice(at + 1) : rest).split(/[/?#]/, 1)[0] ?? '';
  if (hosts === '') return { ok: false, problem: 'has no host:port list' };
  for (const entry of hosts.split(',')) {
    const match = HOST_PORT_RE.exec(entry);
    const port = Number(match?.[2]);
    if (match === null || port < 1 || port > 65535) {
      return { ok: false, problem: `has "${entry}" where a host:port was expected` };
    }
  }
  return { ok: true, kind: 'redis-cluster' };
}

/** `nats://[user:pass@]h1[:p1],h2[:p2][/][?…]` (or `tls://…`): seed servers of one NATS cluster, the port optional (4222). */
function checkNatsSeeds(rest: string): BrokerCheck {
  const at = rest.lastIndexOf('@', rest.search(/[/?#]|$/));
  const hosts = (at >= 0 ? rest.slice(at + 1) : rest).split(/[/?#]/, 1)[0] ?? '';
  for (const entry of hosts.split(',')) {
    const match = HOST_PORT_RE.exec(entry) ?? HOST_RE.exec(entry);
    const port = match?.[2] === undefined ? 4222 : Number(match[2]);
    if (match === null || port < 1 || port > 65535) {
      return { ok: false, problem: `has "${entry}" where a host or host:port was expected` };
    }
  }
  return { ok: true, kind: 'nats' };
}

/** The broker value with any password hidden, for messages and logs. */
export function redactBroker(value: string): string {
  const redacted = value.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^@/]*)@/, (_all, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return colon < 0 ? `${scheme}${userinfo}@` : `${scheme}${userinfo.slice(0, colon)}:***@`;
  });
  // A store URL inside the query (`amqp://…?store=redis://:pw@h`) has a password of its own.
  return redacted.replace(/([?&]store=)([^&#]*)/, (_all, key: string, store: string) => {
    let decoded = store;
    try {
      decoded = decodeURIComponent(store);
    } catch {
      // shown as given, password hidden all the same
    }
    return key + redactBroker(decoded);
  });
}
