/**
 * The Kafka ingest (`--ingest kafka://host:9092/<topic>?group=<id>`): the
 * nodes of the cluster form one consumer group on the topic, so each
 * partition is read by one node at a time and moves to another when a node
 * joins, leaves or dies (after the group's session timeout, 10 s).
 *
 * - **Exactly once.** Each record is published with the idempotency key
 *   `kafka:<topic>:<partition>:<offset>`, and its offset is committed only
 *   after the publish is stored. A record read again after a crash or a
 *   rebalance (its offset not committed yet) is answered "duplicate" by the
 *   broker instead of being delivered twice (within
 *   `--idempotency-window`).
 * - **Order.** A partition's records are published one after another, each
 *   once the one before is stored; a publish that fails for a reason that
 *   may pass is retried (with backoff) before the next, so nothing
 *   overtakes it. Whoever else reads the partition meanwhile (the node it
 *   moved to) publishes in the same order and is told "duplicate" for what
 *   was published already, so a channel whose records share a partition
 *   gets them in partition order. Producers key records by channel for that.
 * - **Poison.** A record that is not a valid command (not JSON, not
 *   `{channel, data}` or `{user, data}`, a bad name, too large) goes to the
 *   dead-letter topic with the reason in the header `switchboard-error` (or
 *   is logged and counted), and the partition goes on.
 */
import type { Consumer, Message, MessagesStream, Producer } from '@platformatic/kafka';
import type { Logger } from 'pino';
import { ErrorCode, SwitchboardError } from '../../protocol/index.js';
import { backoffDelay } from '../../shared/backoff.js';
import { settleWithin } from '../../shared/time.js';
import type { Metrics } from '../metrics.js';
import {
  errorText,
  isPoison,
  KEY_NAME_CHARS,
  publishRecord,
  RETRY_MAX_MS,
  RETRY_MIN_MS,
  statusOf,
  zeroMetrics,
  type Ingest,
  type IngestCommands,
  type IngestStatus,
  type Outcome,
  type Target,
} from './ingest.js';
import type { KafkaSource } from './source.js';

type Record = Message<Buffer, Buffer, Buffer, Buffer>;

/** One partition's records, published in offset order by one worker. */
interface Lane {
  records: Record[];
  working: boolean;
  /** Set when the partition went to another node, or the stream was replaced: the worker stops. */
  dropped: boolean;
  /** The commit of the last record finished and not committed yet. */
  commit: (() => void | Promise<void>) | undefined;
}

/** Records taken and not finished at most; past it the stream pauses until half are done. */
const MAX_PENDING = 2_000;
/** How often finished offsets are committed and the lag and status reported. */
const TICK_MS = 200;
const LAG_EVERY_MS = 5_000;
const SESSION_TIMEOUT_MS = 10_000;
const HEARTBEAT_MS = 1_000;
/** How long closing a stream or a client may take before it is left behind (a broker that is gone answers nothing). */
const CLOSE_MS = 5_000;
/** A stream that lived this long before it failed was healthy: the backoff starts over. */
const STABLE_MS = 30_000;

/** A record's value as a command: `{channel, data}` or `{user, data}`. */
function commandOf(value: Buffer | undefined): { target: Target; data: unknown } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value === undefined ? '' : value.toString('utf8'));
  } catch {
    throw new SwitchboardError(ErrorCode.BadRequest, 'the record value is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || !('data' in parsed)) {
    throw new SwitchboardError(ErrorCode.BadRequest, 'the record value must be {"channel", "data"} or {"user", "data"}');
  }
  const fields = parsed as { channel?: unknown; user?: unknown; data: unknown };
  if ((fields.channel === undefined) === (fields.user === undefined)) {
    throw new SwitchboardError(ErrorCode.BadRequest, 'the record value needs exactly one of "channel" and "user"');
  }
  // Names are checked by the commands themselves, as for any publish.
  return { target: fields.channel !== undefined ? { channel: fields.channel as string } : { user: fields.user as string }, data: fields.data };
}

export class KafkaIngest implements Ingest {
  private consumer: Consumer<Buffer, Buffer, Buffer, Buffer> | undefined;
  private stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  private producer: Producer<Buffer, Buffer, Buffer, Buffer> | undefined;
  private readonly lanes = new Map<number, Lane>();
  private pending = 0;
  private closed = false;
  private running: Promise<void> | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private lastLag = 0;
  /** Why the stream is not open (cleared when it opens). */
  private streamError: string | undefined;
  /** Why the last publish failed (cleared by the next that succeeds). */
  private publishError: string | undefined;
  /** The partitions of the topic this node reads. */
  private assignment = new Set<number>();
  private oldest: number | null = null;
  /** Ends the wait of the consume loop: the stream failed or the ingest closes. */
  private streamDone: (() => void) | undefined;

  constructor(
    private readonly source: KafkaSource,
    private readonly commands: IngestCommands,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly nodeId: string,
  ) {}

  async start(): Promise<void> {
    zeroMetrics(this.metrics, this.source.label);
    const kafka = await import('@platformatic/kafka');
    const base = { clientId: `switchboard-${this.nodeId}`, bootstrapBrokers: this.source.brokers, retries: 3, retryDelay: 250 };
    if (this.source.dead !== undefined) this.producer = new kafka.Producer({ ...base, retries: 5 });
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.running = this.loop(() => {
      const consumer = new kafka.Consumer({ ...base, groupId: this.source.group, sessionTimeout: SESSION_TIMEOUT_MS, heartbeatInterval: HEARTBEAT_MS });
      consumer.on('consumer:group:join', (payload: { assignments?: Array<{ topic: string; partitions: number[] }> | null }) => this.assigned(payload.assignments ?? []));
      consumer.on('error', (err: Error) => this.log.debug({ err, source: this.source.label }, 'kafka consumer error'));
      return consumer;
    });
  }

  status(): IngestStatus {
    return statusOf(this.source.label, this.streamError ?? this.publishError, this.oldest, this.source.stuckSeconds);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.ticker);
    this.streamDone?.();
    await this.running;
    for (const lane of this.lanes.values()) lane.dropped = true;
    await settleWithin(this.commitFinished(), CLOSE_MS);
    if (this.stream) await settleWithin(this.stream.close(), CLOSE_MS);
    if (this.consumer) await settleWithin(this.consumer.close(), CLOSE_MS);
    if (this.producer) await settleWithin(this.producer.close(), CLOSE_MS);
  }

  /**
   * Consume until closed. A stream that fails (a broker gone, the group
   * lost) is given up with its client, and a new client joins after a
   * backoff: the client library keeps the dead broker in its metadata and
   * connections otherwise, and would ask it again and again.
   */
  private async loop(newConsumer: () => Consumer<Buffer, Buffer, Buffer, Buffer>): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      this.consumer = newConsumer();
      let openedAt: number | undefined;
      try {
        const stream = await this.consumer.consume({
          topics: [this.source.topic],
          mode: 'committed',
          fallbackMode: this.source.from,
          autocommit: false,
          maxWaitTime: 100,
          sessionTimeout: SESSION_TIMEOUT_MS,
          heartbeatInterval: HEARTBEAT_MS,
        });
        this.stream = stream;
        openedAt = Date.now();
        this.streamError = undefined;
        await new Promise<void>((resolve) => {
          this.streamDone = resolve;
          // Only the current stream's records: one still buffered in a stream given up would land behind the new stream's.
          stream.on('data', (record: Record) => {
            if (this.stream === stream) this.take(record);
          });
          stream.once('error', (err: Error) => {
            this.streamError = errorText(err);
            resolve();
          });
          stream.once('close', () => resolve());
          if (this.closed) resolve();
        });
        if (this.closed) return;
        throw new Error(this.streamError ?? 'the kafka stream closed');
      } catch (err) {
        if (this.closed) return;
        // Not back to the shortest backoff for a stream that opened and failed at once: each new client makes the group rebalance.
        failures = openedAt !== undefined && Date.now() - openedAt >= STABLE_MS ? 1 : failures + 1;
        this.streamError = errorText(err);
        // What was finished is committed; the next client starts from the committed offsets, so what the lanes still hold comes again.
        await settleWithin(this.commitFinished(), CLOSE_MS);
        this.dropAll();
        const stream = this.stream;
        this.stream = undefined;
        if (stream) await settleWithin(stream.close(), CLOSE_MS);
        // Forced: it leaves at once, even with a fetch under way to the broker that is gone.
        const consumer = this.consumer;
        await settleWithin(new Promise<void>((resolve) => consumer.close(true, () => resolve())), CLOSE_MS);
        this.metrics.ingestFailures.inc({ source: this.source.label });
        if (failures === 1 || failures % 20 === 0) this.log.warn({ err, source: this.source.label, failures }, 'kafka ingest failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, backoffDelay(failures, RETRY_MIN_MS, RETRY_MAX_MS)));
      }
    }
  }

  /** A new assignment: the partitions that went elsewhere stop here (their new reader starts from the committed offset). */
  private assigned(assignments: Array<{ topic: string; partitions: number[] }>): void {
    const mine = new Set(assignments.filter((a) => a.topic === this.source.topic).flatMap((a) => a.partitions));
    for (const [partition, lane] of this.lanes) if (!mine.has(partition)) this.drop(partition, lane);
    for (const partition of this.assignment) if (!mine.has(partition)) this.metrics.ingestLag.remove({ source: this.source.label, partition: String(partition) });
    this.assignment = mine;
  }

  private drop(partition: number, lane: Lane): void {
    lane.dropped = true;
    this.pending -= lane.records.length;
    lane.records = [];
    this.lanes.delete(partition);
  }

  private dropAll(): void {
    for (const [partition, lane] of this.lanes) this.drop(partition, lane);
  }

  private take(record: Record): void {
    // A fetch sent before a rebalance may answer after it, with records of a partition that has gone to
    // another node: publishing (and committing) them here could overtake, and then skip, what that node has not done yet.
    if (this.closed || !this.assignment.has(record.partition)) return;
    this.metrics.ingestRead.inc({ source: this.source.label });
    let lane = this.lanes.get(record.partition);
    if (!lane) this.lanes.set(record.partition, (lane = { records: [], working: false, dropped: false, commit: undefined }));
    lane.records.push(record);
    if (++this.pending >= MAX_PENDING) this.stream?.pause();
    if (!lane.working) void this.work(lane);
  }

  /** Publish a lane's records in order, each retried until it is stored (or the lane is dropped). */
  private async work(lane: Lane): Promise<void> {
    lane.working = true;
    while (lane.records.length > 0 && !lane.dropped && !this.closed) {
      const record = lane.records[0]!;
      const outcome = await this.finish(record, lane);
      if (outcome === undefined) break;
      this.metrics.ingestRecords.inc({ source: this.source.label, outcome });
      // Dropped while it was published: its records, and their count, went with it; nothing is committed from here.
      if (lane.dropped) break;
      lane.records.shift();
      lane.commit = record.commit as () => void | Promise<void>;
      if (--this.pending <= MAX_PENDING / 2) this.stream?.resume();
    }
    lane.working = false;
  }

  /** One record to its end: published, found published before, or dead-lettered; undefined when the lane was dropped or the ingest closed meanwhile. */
  private async finish(record: Record, lane: Lane): Promise<Outcome | undefined> {
    for (let attempt = 1; ; attempt++) {
      if (lane.dropped || this.closed) return undefined;
      try {
        const outcome = await this.publish(record);
        this.publishError = undefined;
        return outcome;
      } catch (err) {
        if (isPoison(err)) {
          const buried = await this.bury(record, errorText(err));
          if (buried) return 'dead';
        } else {
          this.publishError = errorText(err);
          if (attempt === 1) this.log.warn({ err, source: this.source.label, partition: record.partition, offset: String(record.offset) }, 'kafka record not published yet; retrying');
        }
        await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, RETRY_MIN_MS, RETRY_MAX_MS)));
      }
    }
  }

  private async publish(record: Record): Promise<Exclude<Outcome, 'dead'>> {
    const { target, data } = commandOf(record.value);
    return publishRecord(this.commands, target, data, `kafka:${this.source.topic.slice(0, KEY_NAME_CHARS)}:${record.partition}:${record.offset}`);
  }

  /** To the dead-letter topic (true once it is there), or to the log. */
  private async bury(record: Record, reason: string): Promise<boolean> {
    this.log.warn({ source: this.source.label, partition: record.partition, offset: String(record.offset), error: reason }, 'kafka record is not a valid command: dead-lettered');
    if (this.producer === undefined || this.source.dead === undefined) return true;
    try {
      await this.producer.send({
        messages: [
          {
            topic: this.source.dead,
            ...(record.key !== undefined ? { key: record.key } : {}),
            ...(record.value !== undefined ? { value: record.value } : {}),
            headers: new Map([
              [Buffer.from('switchboard-error'), Buffer.from(reason)],
              [Buffer.from('switchboard-source'), Buffer.from(`${record.topic}:${record.partition}:${record.offset}`)],
            ]),
          },
        ],
        acks: -1,
      });
      return true;
    } catch (err) {
      this.publishError = `dead-letter topic: ${errorText(err)}`;
      // The client keeps a dead leader in its metadata until told to forget it.
      this.producer.clearMetadata();
      return false;
    }
  }

  /** Commit each lane's last finished offset (records after a failed commit come again, as duplicates). */
  private async commitFinished(): Promise<void> {
    const commits = [...this.lanes.values()].flatMap((lane) => {
      const commit = lane.commit;
      lane.commit = undefined;
      return commit ? [commit] : [];
    });
    await Promise.all(
      commits.map(async (commit) => {
        try {
          await commit();
        } catch (err) {
          this.log.debug({ err, source: this.source.label }, 'kafka offset commit failed; the records come again as duplicates');
        }
      }),
    );
  }

  private tick(): void {
    void this.commitFinished();
    const now = Date.now();
    let oldest: number | null = null;
    for (const lane of this.lanes.values()) {
      const head = lane.records[0];
      if (head !== undefined) oldest = Math.max(oldest ?? 0, (now - Number(head.timestamp)) / 1000);
    }
    this.oldest = oldest;
    const source = this.source.label;
    this.metrics.ingestOldest.set({ source }, oldest ?? 0);
    this.metrics.ingestStuck.set({ source }, this.status().state === 'running' ? 0 : 1);
    if (now - this.lastLag >= LAG_EVERY_MS) {
      this.lastLag = now;
      void this.reportLag();
    }
  }

  /** Records behind the end of each partition this node reads. */
  private async reportLag(): Promise<void> {
    try {
      const lag = (await this.consumer!.getLag({ topics: [this.source.topic] })).get(this.source.topic) ?? [];
      for (const partition of this.assignment) {
        const behind = lag[partition];
        if (behind !== undefined) this.metrics.ingestLag.set({ source: this.source.label, partition: String(partition) }, Math.max(0, Number(behind)));
      }
    } catch (err) {
      this.log.debug({ err, source: this.source.label }, 'kafka lag not read');
    }
  }
}
