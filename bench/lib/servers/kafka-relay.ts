// What a team without an ingest runs beside Socket.IO to publish a Kafka
// topic (bench/ingest.ts): a consumer group member (@platformatic/kafka)
// that reads records `{"channel", "data"}` and posts each to the Socket.IO
// server's `POST /publish {room, data}`. Kept as simple as such a relay
// usually is: each partition's records one after another (post, wait for
// the answer, next), so a channel's records, keyed by channel, stay in
// order. Offsets are committed after each answer (`each`: the record's own,
// before the next is posted), or (`interval`) each partition's last
// answered one every `COMMIT_EVERY_MS`, as the Switchboard ingest does. A
// post that fails is tried again (at most `POST_ATTEMPTS` times, then the
// record is counted and skipped). At most `MAX_PENDING` records are held;
// past that the stream pauses until half are done. `GET /readyz` answers
// 200 once the group has given this member its partitions, and `GET /stats`
// what it relayed, skipped, and waited for.
//   node kafka-relay.mjs <port> <bootstrap host:port> <topic> <group> <socket.io port> <earliest|latest> <each|interval>
import { createServer } from 'node:http';
import { Consumer, type Message, stringDeserializers } from '@platformatic/kafka';
import { postJson } from '../http.js';

const [port, bootstrap, topic, group, target] = [Number(process.argv[2]), process.argv[3] ?? '', process.argv[4] ?? '', process.argv[5] ?? '', Number(process.argv[6])];
/** Where a group without committed offsets starts: `latest` skips what an earlier relay left behind. */
const from = process.argv[7] === 'latest' ? 'latest' : 'earliest';
const commitEach = process.argv[8] !== 'interval';
const MAX_PENDING = 2_000;
const POST_ATTEMPTS = 3;
const COMMIT_EVERY_MS = 200;
/** As the Switchboard ingest's consumer: the longest a fetch waits at the broker for records. */
const MAX_WAIT_MS = 100;

type Record = Message<string, string, string, string>;
interface Lane {
  records: Record[];
  working: boolean;
  /** `interval`: the last answered record, not committed yet. */
  answered: Record | undefined;
}

const lanes = new Map<number, Lane>();
let pending = 0;
let joined = false;
/** Records relayed and skipped; time spent waiting for posts and for commits, ms (where a partition's time goes). */
const stats = { relayed: 0, skipped: 0, postMs: 0, commitMs: 0, firstError: undefined as string | undefined };
const failed = (err: unknown): void => void (stats.firstError ??= err instanceof Error ? err.message : String(err));

const consumer = new Consumer({
  clientId: 'sio-relay',
  groupId: group,
  bootstrapBrokers: [bootstrap],
  deserializers: stringDeserializers,
  sessionTimeout: 10_000,
  heartbeatInterval: 1_000,
});
consumer.on('consumer:group:join', (payload: { assignments?: unknown[] | null }) => (joined = (payload.assignments ?? []).length > 0));
const stream = await consumer.consume({ topics: [topic], mode: 'committed', fallbackMode: from, autocommit: false, maxWaitTime: MAX_WAIT_MS });

/** Post one record to Socket.IO, tried again on failure; true once it was answered 200. */
async function relay(record: Record): Promise<boolean> {
  const { channel, data } = JSON.parse(record.value) as { channel: string; data: unknown };
  for (let attempt = 1; ; attempt++) {
    try {
      await postJson(target, '/publish', { room: channel, data });
      return true;
    } catch (err) {
      failed(err);
      if (attempt >= POST_ATTEMPTS) return false;
    }
  }
}

/** Commits up to `record`; a failure is noted (a later commit covers it; a restart would relay it again). */
async function commit(record: Record): Promise<void> {
  try {
    await record.commit();
  } catch (err) {
    failed(err);
  }
}

/** A partition's records in offset order: post, (commit), next. */
async function work(lane: Lane): Promise<void> {
  lane.working = true;
  while (lane.records.length > 0) {
    const record = lane.records[0]!;
    const t0 = performance.now();
    if (await relay(record)) stats.relayed++;
    else stats.skipped++;
    const t1 = performance.now();
    stats.postMs += t1 - t0;
    if (commitEach) {
      await commit(record);
      stats.commitMs += performance.now() - t1;
    } else lane.answered = record;
    lane.records.shift();
    if (--pending <= MAX_PENDING / 2) stream.resume();
  }
  lane.working = false;
}

if (!commitEach) {
  setInterval(() => {
    for (const lane of lanes.values()) {
      const record = lane.answered;
      lane.answered = undefined;
      if (record) void commit(record);
    }
  }, COMMIT_EVERY_MS);
}

stream.on('data', (record: Record) => {
  let lane = lanes.get(record.partition);
  if (!lane) lanes.set(record.partition, (lane = { records: [], working: false, answered: undefined }));
  lane.records.push(record);
  if (++pending >= MAX_PENDING) stream.pause();
  if (!lane.working) void work(lane);
});
stream.on('error', (err: Error) => {
  console.error(`kafka relay: ${err.message}`);
  process.exit(1);
});

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/readyz') {
    res.statusCode = joined ? 200 : 503;
    return void res.end();
  }
  if (req.method === 'GET' && req.url === '/stats') return void res.end(JSON.stringify(stats));
  res.statusCode = 404;
  res.end();
});
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  void stream
    .close()
    .then(() => consumer.close())
    .finally(() => process.exit(0));
});
