/**
 * The Kafka ingest, end to end: a real Kafka broker (KRaft) with a topic of
 * 3 partitions, a real redis-server, two node processes in one consumer
 * group (`--ingest kafka://…/orders?group=…`), clients on node a. Records
 * are keyed by channel, as the docs ask, so a channel's records share a
 * partition. Every record reaches its channel or user exactly once and in
 * order: as they come, past poison records (which go to the dead-letter
 * topic), while a node is killed with SIGKILL mid-stream (its partitions
 * move to the other node), across a broker restart, and, on a 3-broker
 * cluster with replicated topics, while a broker is killed.
 */
import { Admin, Consumer, Producer, stringDeserializers, stringSerializers } from '@platformatic/kafka';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { personalChannel, type ServerFrame } from '../../src/protocol/index.js';
import { startKafka, startKafkaCluster, type KafkaCluster, type KafkaProcess } from '../helpers/kafka-server.js';
import { metric } from '../helpers/metrics.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { sleep } from '../helpers/wait.js';

const TOPIC = 'orders';
const DEAD = 'orders.dead';

const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** The `seq` of every message `client` got on `channel`, in arrival order. */
function seqs(client: RawClient, channel: string): number[] {
  return client.frames
    .filter((f): f is Extract<ServerFrame, { type: 'message' }> => f.type === 'message' && f.channel === channel)
    .map((f) => (f.data as { seq: number }).seq);
}

/** Two nodes over one Redis reading one topic, a producer, and the clients of a test. */
class Rig {
  nodes: NodeProcess[] = [];
  readonly clients: RawClient[] = [];
  readonly producer: Producer<string, string, string, string>;
  private readonly group = `sb-${randomUUID().slice(0, 8)}`;

  constructor(
    readonly bootstrap: string,
    readonly redis: RedisProcess,
  ) {
    this.producer = new Producer({ clientId: 'test-producer', bootstrapBrokers: bootstrap.split(','), serializers: stringSerializers, retries: 20, retryDelay: 250 });
  }

  async createTopics(replicas: number): Promise<void> {
    const admin = new Admin({ clientId: 'test-admin', bootstrapBrokers: this.bootstrap.split(',') });
    await admin.createTopics({ topics: [TOPIC, DEAD], partitions: 3, replicas });
    await admin.close();
  }

  startNode(id: string): Promise<NodeProcess> {
    const url = `kafka://${this.bootstrap}/${TOPIC}?group=${this.group}&dead=${DEAD}`;
    return startNodeProcess(id, ['--broker', this.redis.url, '--insecure', '--ingest', url, '--heartbeat', '1']);
  }

  async start(): Promise<void> {
    this.nodes = await Promise.all([this.startNode('a'), this.startNode('b')]);
  }

  async connect(user: string, channels: string[]): Promise<RawClient> {
    const client = await RawClient.connect(this.nodes[0]!.ws(`user=${user}`));
    client.answerPings();
    this.clients.push(client);
    for (const channel of channels) expect(await client.request({ type: 'subscribe', channel })).not.toHaveProperty('error');
    return client;
  }

  /** `count` records for each channel (a send when it is a personal channel), keyed by channel, `perSend` a request, from `from`. */
  async stream(channels: string[], from: number, count: number, perSend: number, pauseMs = 0): Promise<void> {
    const records: Array<{ topic: string; key: string; value: string }> = [];
    for (let seq = from; seq < from + count; seq++) {
      for (const c of channels) {
        const user = c.startsWith('user:') ? c.slice('user:'.length) : undefined;
        records.push({ topic: TOPIC, key: c, value: JSON.stringify(user !== undefined ? { user, data: { seq } } : { channel: c, data: { seq } }) });
      }
    }
    for (let i = 0; i < records.length; i += perSend) {
      await this.sendRecords(records.slice(i, i + perSend));
      // Records keep coming while the fault happens, as a business service's would.
      if (pauseMs > 0) await sleep(pauseMs);
    }
  }

  /** Sent with acks from every in-sync replica; a send that meets a dead leader is sent again once the client forgets it. */
  async sendRecords(messages: Array<{ topic: string; key: string; value: string }>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.producer.send({ messages, acks: -1 });
        return;
      } catch (err) {
        if (attempt >= 20) throw err;
        this.producer.clearMetadata();
        await sleep(250);
      }
    }
  }

  /**
   * What the topic holds for `channels`, in partition order: the seqs each
   * channel's records carry. A producer that sends again after a failure
   * may have written a record twice; the ingest must deliver exactly what
   * the topic holds, so this is what the clients are held to.
   */
  async recordsOf(channels: string[], atLeast: number): Promise<Map<string, number[]>> {
    const found = await this.readTopic(channels, atLeast);
    const count = [...found.values()].reduce((n, l) => n + l.length, 0);
    if (count > atLeast) console.log(`the topic holds ${count} records of ${channels.join(', ')} for ${atLeast} sent: a send retried after a failure was written twice, and is delivered twice`);
    return found;
  }

  private async readTopic(channels: string[], atLeast: number): Promise<Map<string, number[]>> {
    const consumer = new Consumer({ groupId: `check-${randomUUID()}`, clientId: 'test-check', bootstrapBrokers: this.bootstrap.split(','), deserializers: stringDeserializers, retries: 20, retryDelay: 250 });
    const found = new Map<string, number[]>(channels.map((c) => [c, []]));
    let count = 0;
    const stream = await consumer.consume({ topics: [TOPIC], mode: 'earliest', autocommit: false, maxWaitTime: 100 });
    let last = Date.now();
    stream.on('data', (m) => {
      const list = found.get(m.key);
      if (list === undefined) return;
      list.push((JSON.parse(m.value) as { data: { seq: number } }).data.seq);
      count++;
      last = Date.now();
    });
    // Until the topic has given everything (nothing new for a second, and at least what was sent).
    await vi.waitUntil(() => count >= atLeast && Date.now() - last > 1_000, { timeout: 30_000, interval: 100 });
    await stream.close();
    await consumer.close();
    return found;
  }

  async published(outcome: string): Promise<number> {
    let sum = 0;
    for (const n of this.nodes) sum += await metric(n.url('/metrics'), 'switchboard_ingest_records_total', { outcome }).catch(() => 0);
    return sum;
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close().catch(() => undefined)));
    await Promise.all(this.nodes.map((n) => n.kill()));
    await this.producer.close().catch(() => undefined);
  }
}

describe('the Kafka ingest, one broker', () => {
  let kafka: KafkaProcess;
  let redis: RedisProcess;
  let rig: Rig;

  beforeAll(async () => {
    [kafka, redis] = await Promise.all([startKafka(), startRedis()]);
    rig = new Rig(kafka.bootstrap, redis);
    await rig.createTopics(1);
    await rig.start();
  }, 90_000);

  afterAll(async () => {
    await rig?.close();
    await Promise.all([kafka?.kill(), redis?.stop()]);
  }, 30_000);

  it('publishes every record once, in partition order, to channels and users', async () => {
    const channels = ['orders.1', 'orders.2', 'orders.3', 'orders.4'];
    const client = await rig.connect('alice', channels);
    await rig.stream([...channels, personalChannel('alice')], 0, 100, 50);
    await vi.waitFor(
      () => {
        for (const c of channels) expect(seqs(client, c)).toEqual(upTo(100));
        expect(seqs(client, personalChannel('alice'))).toEqual(upTo(100));
      },
      { timeout: 30_000, interval: 50 },
    );
    expect(await rig.published('published')).toBe(500);
  }, 60_000);

  it('dead-letters a record that is not a valid command, with the reason, and goes on with its partition', async () => {
    const client = await rig.connect('bob', ['poison.ok']);
    await rig.sendRecords([
      { topic: TOPIC, key: 'poison.ok', value: JSON.stringify({ channel: 'poison.ok', data: { seq: 0 } }) },
      { topic: TOPIC, key: 'poison.ok', value: '{not json' },
      { topic: TOPIC, key: 'poison.ok', value: JSON.stringify({ channel: 'not a channel!', data: {} }) },
      { topic: TOPIC, key: 'poison.ok', value: JSON.stringify({ channel: 'poison.ok', data: { seq: 1 } }) },
    ]);
    await vi.waitFor(() => expect(seqs(client, 'poison.ok')).toEqual([0, 1]), { timeout: 15_000, interval: 20 });
    const consumer = new Consumer({ groupId: `dead-${randomUUID()}`, clientId: 'test-dead', bootstrapBrokers: [kafka.bootstrap], deserializers: stringDeserializers });
    const dead: Array<{ value: string; error: string | undefined }> = [];
    const stream = await consumer.consume({ topics: [DEAD], mode: 'earliest', autocommit: false });
    for await (const m of stream) {
      dead.push({ value: m.value, error: m.headers.get('switchboard-error') });
      if (dead.length === 2) break;
    }
    await stream.close();
    await consumer.close();
    expect(dead.map((d) => d.value)).toEqual(['{not json', JSON.stringify({ channel: 'not a channel!', data: {} })]);
    expect(dead[0]?.error).toMatch(/not JSON/);
    expect(dead[1]?.error).toMatch(/channel name/);
    expect(await rig.published('dead')).toBe(2);
  }, 60_000);

  it('loses and repeats nothing when a node is killed with SIGKILL mid-stream', async () => {
    const channels = Array.from({ length: 6 }, (_, i) => `kill.${i}`);
    const client = await rig.connect('carol', channels);
    const writing = rig.stream([...channels, personalChannel('carol')], 0, 300, 35, 10);
    // Once a part has gone out, node b dies; its partitions move to a after the session timeout.
    await vi.waitFor(() => expect(seqs(client, 'kill.0').length).toBeGreaterThan(30), { timeout: 20_000, interval: 5 });
    await rig.nodes[1]!.kill();
    await writing;
    const all = [...channels, personalChannel('carol')];
    const held = await rig.recordsOf(all, all.length * 300);
    for (const c of all) expect(new Set(held.get(c))).toEqual(new Set(upTo(300)));
    await vi.waitFor(
      () => {
        for (const c of all) expect(seqs(client, c)).toEqual(held.get(c));
      },
      { timeout: 60_000, interval: 50 },
    );
    rig.nodes[1] = await rig.startNode('b');
  }, 120_000);

  it('loses and repeats nothing across a broker restart', async () => {
    const channels = ['restart.0', 'restart.1', 'restart.2'];
    const client = await rig.connect('dave', channels);
    await rig.stream(channels, 0, 50, 15);
    await vi.waitFor(() => expect(seqs(client, 'restart.0').length).toBeGreaterThan(0), { timeout: 15_000, interval: 5 });
    await kafka.kill();
    await kafka.restart();
    await rig.stream(channels, 50, 50, 15);
    const held = await rig.recordsOf(channels, channels.length * 100);
    for (const c of channels) expect(new Set(held.get(c))).toEqual(new Set(upTo(100)));
    await vi.waitFor(
      () => {
        for (const c of channels) expect(seqs(client, c)).toEqual(held.get(c));
      },
      { timeout: 60_000, interval: 50 },
    );
  }, 120_000);
});

describe('the Kafka ingest, a 3-broker cluster with replicated topics', () => {
  let cluster: KafkaCluster;
  let redis: RedisProcess;
  let rig: Rig;

  beforeAll(async () => {
    [cluster, redis] = await Promise.all([startKafkaCluster(3), startRedis()]);
    rig = new Rig(cluster.bootstrap, redis);
    await rig.createTopics(3);
    await rig.start();
  }, 120_000);

  afterAll(async () => {
    await rig?.close();
    await Promise.all([cluster?.stop(), redis?.stop()]);
  }, 60_000);

  it('loses and repeats nothing when a broker is killed mid-stream', async () => {
    const channels = Array.from({ length: 4 }, (_, i) => `replicated.${i}`);
    const client = await rig.connect('erin', channels);
    const writing = rig.stream(channels, 0, 200, 20, 10);
    await vi.waitFor(() => expect(seqs(client, 'replicated.0').length).toBeGreaterThan(20), { timeout: 30_000, interval: 5 });
    await cluster.nodes[0]!.kill();
    await writing;
    const held = await rig.recordsOf(channels, channels.length * 200);
    for (const c of channels) expect(new Set(held.get(c))).toEqual(new Set(upTo(200)));
    await vi.waitFor(
      () => {
        for (const c of channels) expect(seqs(client, c)).toEqual(held.get(c));
      },
      { timeout: 60_000, interval: 50 },
    );
  }, 150_000);
});
