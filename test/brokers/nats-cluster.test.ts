/**
 * The broker conformance suite against a real 3-server NATS cluster with
 * JetStream (streams and the presence bucket replicated 3 times). Each
 * broker is given one server as its seed, a different one per node, so
 * nodes talk through the cluster's routes: publications, republished
 * history and control messages all cross servers.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import type { Route } from '../../src/brokers/broker.js';
import { dropNatsPrefix } from '../../src/brokers/nats/admin.js';
import { NatsBroker } from '../../src/brokers/nats/nats-broker.js';
import { startNatsCluster, type NatsCluster } from '../helpers/nats-server.js';
import { brokerSuite, type BrokerBackend } from './suite.js';

let cluster: NatsCluster | undefined;
beforeAll(async () => {
  cluster = await startNatsCluster(3);
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

function backend(routes: ReadonlyArray<Route['to']>): () => Promise<BrokerBackend> {
  return async () => {
    const prefix = `t${randomBytes(3).toString('hex')}`;
    const faults: string[] = [];
    let made = 0;
    return {
      make: () => {
        const seed = cluster!.nodes[made++ % cluster!.nodes.length]!.url;
        return new NatsBroker(seed, { prefix, routes, replicas: 3, onError: (err, where) => void faults.push(`${where}: ${err.message}`) });
      },
      cleanup: async () => {
        await dropNatsPrefix(cluster!.url, prefix);
        if (faults.length > 0) throw new Error(`the brokers reported faults:\n${faults.join('\n')}`);
      },
    };
  };
}

brokerSuite('nats cluster', backend(['subscribers']), { routes: ['subscribers'] });
brokerSuite('nats cluster (all mode)', backend(['all']), { routes: ['subscribers', 'all'] });
