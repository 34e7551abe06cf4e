/**
 * Could Kafka carry messages between nodes, the pattern of seed 002 (a topic
 * per node as its inbox, a user→node registry)? What such a broker would pay
 * where the others do not, measured against Redis pub/sub (what the Redis
 * broker carries messages on) in the same run:
 *
 *   npm run bench -- bench/kafka-carrier.ts [--messages 2000] [--rate 500] [--waits 10,100,500]
 *
 * 1. A node joining: the time from "create my inbox topic" to the first
 *    message read from it (topic creation, the consumer's join and its first
 *    fetch), against Redis's SUBSCRIBE round trip.
 * 2. One message from node to node: `--messages` at `--rate`/s, one at a
 *    time, from a producer to a consumer of the inbox (acks from the leader,
 *    as a carrier that keeps no history would), with the consumer's
 *    `maxWaitTime` (how long a fetch waits for data) at each of `--waits` ms;
 *    against PUBLISH → SUBSCRIBE on redis-server. p50/p99/max, and the CPU
 *    of the broker process per message (the JVM; redis-server).
 * 3. A node dying: with the nodes as one consumer group on a shared topic
 *    (the other way to spread a topic over nodes), the time from SIGKILL of
 *    one member to the survivor reading the dead member's partitions.
 *
 * One Kafka broker (KRaft) from test/helpers/kafka-server.ts and one
 * redis-server, on loopback; every loop bounded in count and time.
 */
import { Admin, Consumer, Producer, stringDeserializers, stringSerializers } from '@platformatic/kafka';
import { fork } from 'node:child_process';
import { Redis } from 'ioredis';
import { startKafka } from '../test/helpers/kafka-server.js';
import { startRedis } from '../test/helpers/redis-server.js';
import { type Flag, int, ints, parseFlags, valued } from './lib/flags.js';
import { redisPidOf } from './lib/cluster.js';
import { bundle } from './lib/paths.js';
import { cpuMs } from './lib/procs.js';
import { fmt, machine, resultPath, table, writeResult } from './lib/report.js';
import { quantiles, type Quantiles } from './lib/stats.js';
import { sleep } from './lib/wait.js';

interface Args {
  messages: number;
  rate: number;
  waits: number[];
  out: string | undefined;
}

const args = parseFlags<Args>(
  process.argv.slice(2),
  { messages: 2000, rate: 500, waits: [10, 100, 500], out: undefined },
  {
    '--messages': valued((a, v, f) => (a.messages = int(f, v, 10, 100_000))),
    '--rate': valued((a, v, f) => (a.rate = int(f, v, 1, 20_000))),
    '--waits': valued((a, v, f) => (a.waits = ints(f, v, 1, 5000))),
    '--out': valued((a, v) => (a.out = v)),
  } satisfies Record<string, Flag<Args>>,
  'npm run bench -- bench/kafka-carrier.ts [--messages 2000] [--rate 500] [--waits 10,100,500] [--out name]',
);

const PHASE_TIMEOUT_MS = 60_000;

interface LatencyRow {
  carrier: string;
  latency: Quantiles;
  received: number;
  brokerCpuUsPerMessage: number;
}

/** Send `count` stamped messages at `rate`/s with `send`, one at a time; `received` fills as they arrive; the latencies in ms. */
async function paced(send: (text: string) => Promise<void>, received: () => number[], count: number, rate: number): Promise<number[]> {
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / rate;
    const now = performance.now();
    if (due > now) await sleep(due - now);
    await send(String(performance.now()));
  }
  const deadline = Date.now() + PHASE_TIMEOUT_MS;
  while (received().length < count && Date.now() < deadline) await sleep(20);
  return received();
}

async function main(): Promise<void> {
  const started = Date.now();
  const [kafka, redis] = await Promise.all([startKafka(), startRedis()]);
  const bootstrap = [kafka.bootstrap];
  const results: Record<string, unknown> = {};
  try {
    // ---- 1. a node joining: inbox topic created, first message read ----
    const joins: number[] = [];
    for (let n = 0; n < 3; n++) {
      const topic = `inbox-join-${n}`;
      const t0 = performance.now();
      const admin = new Admin({ clientId: 'join', bootstrapBrokers: bootstrap });
      await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 });
      await admin.close();
      const consumer = new Consumer({ groupId: `node-${n}`, clientId: 'join', bootstrapBrokers: bootstrap, deserializers: stringDeserializers });
      const stream = await consumer.consume({ topics: [topic], mode: 'latest', autocommit: false, maxWaitTime: 10 });
      const producer = new Producer({ clientId: 'join', bootstrapBrokers: bootstrap, serializers: stringSerializers });
      const first = new Promise<void>((resolve) => stream.once('data', () => resolve()));
      // Sent until one is read: a consumer that starts at `latest` misses what came before its first fetch.
      for (let i = 0; i < 500; i++) {
        await producer.send({ messages: [{ topic, value: 'hello' }], acks: 1 });
        if (await Promise.race([first.then(() => true), sleep(10).then(() => false)])) break;
      }
      joins.push(performance.now() - t0);
      await stream.close();
      await consumer.close();
      await producer.close();
    }
    const sub = new Redis(redis.url);
    const redisJoins: number[] = [];
    for (let n = 0; n < 3; n++) {
      const t0 = performance.now();
      await sub.subscribe(`inbox-join-${n}`);
      redisJoins.push(performance.now() - t0);
    }
    await sub.quit();
    results.join = { kafkaMs: joins, redisMs: redisJoins };
    console.log(`a node joining: Kafka ${joins.map((j) => fmt(j, 0)).join(', ')} ms (topic, group join, first fetch); Redis SUBSCRIBE ${redisJoins.map((j) => fmt(j, 2)).join(', ')} ms`);

    // ---- 2. node to node, one message at a time ----
    const rows: LatencyRow[] = [];
    for (const wait of args.waits) {
      const topic = `inbox-wait-${wait}`;
      const admin = new Admin({ clientId: 'lat', bootstrapBrokers: bootstrap });
      await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 });
      await admin.close();
      const consumer = new Consumer({ groupId: `lat-${wait}`, clientId: 'lat', bootstrapBrokers: bootstrap, deserializers: stringDeserializers });
      const stream = await consumer.consume({ topics: [topic], mode: 'latest', autocommit: false, maxWaitTime: wait });
      const producer = new Producer({ clientId: 'lat', bootstrapBrokers: bootstrap, serializers: stringSerializers });
      // Listening (the stream fetches only while someone reads it) and warm before the measured messages, which are those stamped after `from`.
      const got: number[] = [];
      let from = Number.POSITIVE_INFINITY;
      stream.on('data', (m: { value: string }) => {
        if (Number(m.value) >= from) got.push(performance.now() - Number(m.value));
      });
      for (let i = 0; i < 20; i++) {
        await producer.send({ messages: [{ topic, value: String(performance.now()) }], acks: 1 });
        await sleep(50);
      }
      await sleep(500);
      from = performance.now();
      const cpu0 = cpuMs(kafka.pid);
      const lat = await paced(async (text) => void (await producer.send({ messages: [{ topic, value: text }], acks: 1 })), () => got, args.messages, args.rate);
      const cpu = cpuMs(kafka.pid) - cpu0;
      rows.push({ carrier: `Kafka, maxWaitTime ${wait} ms`, latency: quantiles(lat), received: lat.length, brokerCpuUsPerMessage: (cpu * 1e3) / args.messages });
      await stream.close();
      await consumer.close();
      await producer.close();
    }
    {
      const pub = new Redis(redis.url);
      const subscriber = new Redis(redis.url);
      const got: number[] = [];
      await subscriber.subscribe('inbox-redis');
      subscriber.on('message', (_c: string, text: string) => got.push(performance.now() - Number(text)));
      const redisPid = redisPidOf(redis.port);
      const cpu0 = cpuMs(redisPid);
      const lat = await paced(async (text) => void (await pub.publish('inbox-redis', text)), () => got, args.messages, args.rate);
      const cpu = cpuMs(redisPid) - cpu0;
      rows.push({ carrier: 'Redis PUBLISH → SUBSCRIBE', latency: quantiles(lat), received: lat.length, brokerCpuUsPerMessage: (cpu * 1e3) / args.messages });
      await pub.quit();
      await subscriber.quit();
    }
    const redisRow = rows[rows.length - 1]!;
    results.latency = rows;
    console.log(`\nnode to node, ${args.messages} messages at ${args.rate}/s, one at a time:`);
    console.log(
      table(
        ['carrier', 'received', 'p50 ms', 'p99 ms', 'max ms', 'broker CPU µs/msg', 'p99 / Redis'],
        rows.map((r) => [r.carrier, `${r.received}/${args.messages}`, fmt(r.latency.p50, 2), fmt(r.latency.p99, 2), fmt(r.latency.max, 1), fmt(r.brokerCpuUsPerMessage, 1), `${fmt(r.latency.p99 / redisRow.latency.p99, 1)}×`]),
      ),
    );

    // ---- 3. a node dying in a consumer group ----
    const topic = 'shared';
    const admin = new Admin({ clientId: 'grp', bootstrapBrokers: bootstrap });
    await admin.createTopics({ topics: [topic], partitions: 4, replicas: 1 });
    await admin.close();
    const member = fork(await bundle('bench/lib/servers/kafka-member.ts', 'kafka-member'), [kafka.bootstrap, topic], { stdio: 'inherit' });
    await new Promise<void>((resolve) => member.once('message', () => resolve()));
    const consumer = new Consumer({ groupId: 'members', clientId: 'survivor', bootstrapBrokers: bootstrap, deserializers: stringDeserializers, sessionTimeout: 10_000, heartbeatInterval: 1000 });
    let mine = new Set<number>();
    consumer.on('consumer:group:join', (p: { assignments?: Array<{ partitions: number[] }> | null }) => (mine = new Set((p.assignments ?? []).flatMap((a) => a.partitions))));
    const stream = await consumer.consume({ topics: [topic], mode: 'latest', autocommit: true, maxWaitTime: 10, sessionTimeout: 10_000, heartbeatInterval: 1000 });
    stream.on('data', () => undefined);
    const deadline = Date.now() + PHASE_TIMEOUT_MS;
    while (mine.size !== 2 && Date.now() < deadline) await sleep(50);
    const killedAt = performance.now();
    member.kill('SIGKILL');
    while (mine.size !== 4 && Date.now() < deadline) await sleep(20);
    const takeover = performance.now() - killedAt;
    await stream.close();
    await consumer.close();
    results.takeover = { ms: takeover, sessionTimeoutMs: 10_000 };
    console.log(`\na member killed: the survivor holds all 4 partitions after ${fmt(takeover, 0)} ms (session timeout 10000 ms); nothing is read from the dead member's partitions meanwhile`);
  } finally {
    await Promise.all([kafka.stop(), redis.stop()]);
  }
  const file = writeResult(resultPath(args.out, `kafka-carrier-${new Date().toISOString().slice(0, 10)}`, '.json'), JSON.stringify({ args, machine: machine(), results, seconds: (Date.now() - started) / 1000 }, null, 2));
  console.log(`\nwrote ${file}`);
}

await main();
