/**
 * The broker conformance suite against a real three-master Redis Cluster on
 * free ports. Each test gets its own key prefix and a FLUSHALL on every
 * master afterwards; any fault the brokers report surviving fails the test.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { RedisBroker } from '../../src/brokers/redis/redis-broker.js';
import { flushAll, startRedisCluster, type RedisCluster } from '../helpers/redis-server.js';
import { brokerSuite } from './suite.js';

let cluster: RedisCluster | undefined;
beforeAll(async () => {
  cluster = await startRedisCluster(3);
});
afterAll(async () => {
  await cluster?.stop();
});

brokerSuite('redis-cluster', async () => {
  const prefix = `t${randomBytes(3).toString('hex')}`;
  const faults: string[] = [];
  return {
    make: () => new RedisBroker(cluster!.url, { prefix, onError: (err, where) => void faults.push(`${where}: ${err.message}`) }),
    cleanup: async () => {
      await flushAll(cluster!.ports);
      if (faults.length > 0) throw new Error(`the brokers reported faults:\n${faults.join('\n')}`);
    },
  };
}, { readsSubscribing: true });
