/**
 * The broker conformance suite against a real standalone `redis-server` on a
 * free port. Each test gets its own key prefix and a FLUSHALL afterwards;
 * any fault the brokers report surviving fails the test.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { RedisBroker } from '../../src/brokers/redis/redis-broker.js';
import { flushAll, startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { brokerSuite } from './suite.js';

let server: RedisProcess | undefined;
beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server?.stop();
});

brokerSuite('redis', async () => {
  const prefix = `t${randomBytes(3).toString('hex')}`;
  const faults: string[] = [];
  return {
    make: () => new RedisBroker(server!.url, { prefix, onError: (err, where) => void faults.push(`${where}: ${err.message}`) }),
    cleanup: async () => {
      await flushAll([server!.port]);
      if (faults.length > 0) throw new Error(`the brokers reported faults:\n${faults.join('\n')}`);
    },
  };
}, { readsSubscribing: true });
