/**
 * The broker conformance suite against the RabbitMQ on 127.0.0.1:5672
 * (guest/guest), with a `redis-server` of its own on a free port as the
 * store. Each test gets its own prefix (exchanges, queues and keys), so the
 * shared RabbitMQ is never disturbed; its exchanges and queues auto-delete
 * with the last broker. Any fault the brokers report surviving fails the
 * test, and so does a gap the sequencer had to fill from history: in a
 * healthy cluster every publication arrives over RabbitMQ.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { AmqpBroker } from '../../src/brokers/amqp/amqp-broker.js';
import { flushAll, startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { brokerSuite } from './suite.js';

const RABBITMQ = process.env.SWITCHBOARD_TEST_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672/';

let store: RedisProcess | undefined;
beforeAll(async () => {
  store = await startRedis();
});
afterAll(async () => {
  await store?.stop();
});

brokerSuite('rabbitmq', async () => {
  const prefix = `t${randomBytes(3).toString('hex')}`;
  const faults: string[] = [];
  const made: AmqpBroker[] = [];
  return {
    make: () => {
      const broker = new AmqpBroker(`${RABBITMQ}?store=${encodeURIComponent(store!.url)}&prefix=${prefix}`, {
        onError: (err, where) => void faults.push(`${where}: ${err.message}`),
      });
      made.push(broker);
      return broker;
    },
    cleanup: async () => {
      await flushAll([store!.port]);
      const filled = made.reduce((n, b) => n + (b.ordering?.filled ?? 0), 0);
      if (faults.length > 0) throw new Error(`the brokers reported faults:\n${faults.join('\n')}`);
      if (filled > 0) throw new Error(`the sequencers filled ${filled} publications from history`);
    },
  };
});
