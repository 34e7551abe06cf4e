/**
 * Brokers over TLS only: a redis-server with no plain port and a nats-server
 * whose clients must speak TLS, each with a test CA; Redis also requires a
 * client certificate (mutual TLS). Two nodes over each deliver a message
 * from one node to a client of the other, and the URL's `tls-*` options are
 * what makes that work: without the CA (or the client certificate) the
 * node does not start.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { testCa } from '../helpers/certs.js';
import { startNats, type NatsProcess } from '../helpers/nats-server.js';
import { RawClient } from '../helpers/raw-client.js';
import { startTlsRedis, startTlsRedisCluster, type TlsRedis } from '../helpers/redis-tls.js';

const ca = testCa();
const server = ca.issue('server');
const client = ca.issue('client');
const nodes: SwitchboardNode[] = [];
let redis: TlsRedis | undefined;
let redisCluster: TlsRedis | undefined;
let nats: NatsProcess | undefined;
let natsMutual: NatsProcess | undefined;

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()));
  await redis?.stop();
  await redisCluster?.stop();
  await nats?.stop();
  await natsMutual?.stop();
});

/** A nats-server configuration block: TLS with the test CA, client certificates required when `verify`. */
const natsTls = (verify: boolean): string[] => [
  'tls {',
  `  cert_file: "${server.cert}"`,
  `  key_file: "${server.key}"`,
  `  ca_file: "${ca.ca}"`,
  ...(verify ? ['  verify: true'] : []),
  '}',
];

async function node(broker: string, id: string): Promise<SwitchboardNode> {
  const n = await startNode({ port: 0, host: '127.0.0.1', insecure: true, logLevel: 'silent', nodeId: id, broker, heartbeat: 1 });
  nodes.push(n);
  return n;
}

/** Two nodes over `broker`: a message sent through one reaches a client of the other. */
async function deliversAcross(broker: string, tag: string): Promise<void> {
  const a = await node(broker, `${tag}-a`);
  const b = await node(broker, `${tag}-b`);
  const alice = await RawClient.connect(`ws://127.0.0.1:${a.port}/ws?user=alice-${tag}`);
  try {
    await b.send(`alice-${tag}`, { via: tag });
    const got = await alice.next((f) => f.type === 'message');
    expect(got).toMatchObject({ type: 'message', channel: `user:alice-${tag}`, data: { via: tag } });
  } finally {
    await alice.close();
  }
}

/** Starting a node over `broker` fails because the broker cannot be reached (the handshake is refused either way). */
async function refused(broker: string): Promise<void> {
  const outcome = await startNode({ port: 0, host: '127.0.0.1', insecure: true, logLevel: 'silent', broker }).then(
    (n) => {
      nodes.push(n);
      return undefined;
    },
    (err: unknown) => err,
  );
  expect(String(outcome)).toMatch(/was not reachable within/);
}

describe('Redis over TLS only, with client certificates', () => {
  it('carries messages between two nodes with rediss:// and tls-ca, tls-cert, tls-key, tls-servername', async () => {
    redis = await startTlsRedis({ server, ca: ca.ca, clientCerts: true, client });
    const q = `tls-ca=${ca.ca}&tls-cert=${client.cert}&tls-key=${client.key}&tls-servername=localhost&prefix=tls${Date.now()}`;
    await deliversAcross(`${redis.url}?${q}`, 'redis');
  });

  it('does not connect without the client certificate, nor with a plain redis:// URL', async () => {
    const port = redis?.port;
    expect(port).toBeDefined();
    await refused(`rediss://127.0.0.1:${port}?tls-ca=${ca.ca}`);
    await refused(`redis://127.0.0.1:${port}`);
  });
});

describe('Redis Cluster over TLS only, with client certificates', () => {
  it('carries messages between two nodes with rediss+cluster://', async () => {
    redisCluster = await startTlsRedisCluster({ server, ca: ca.ca, clientCerts: true, client });
    const q = `tls-ca=${ca.ca}&tls-cert=${client.cert}&tls-key=${client.key}&prefix=tls${Date.now()}`;
    await deliversAcross(`${redisCluster.url}?${q}`, 'redis-cluster');
  }, 60_000);
});

describe('NATS over TLS only', () => {
  it('carries messages between two nodes with tls:// and tls-ca', async () => {
    nats = await startNats(natsTls(false));
    await deliversAcross(`tls://127.0.0.1:${nats.port}?tls-ca=${ca.ca}&prefix=tls${Date.now()}`, 'nats');
  });

  it('does not connect without the CA, nor with nats://', async () => {
    await refused(`tls://127.0.0.1:${nats?.port}`);
    await refused(`nats://127.0.0.1:${nats?.port}`);
  });

  it('with client certificates required, carries messages given tls-cert and tls-key, and refuses a node without them', async () => {
    natsMutual = await startNats(natsTls(true));
    const base = `tls://127.0.0.1:${natsMutual.port}?tls-ca=${ca.ca}&tls-servername=localhost&prefix=mtls${Date.now()}`;
    await deliversAcross(`${base}&tls-cert=${client.cert}&tls-key=${client.key}`, 'nats-mutual');
    await refused(base);
  });
});
