/**
 * One member of a Kafka consumer group, in a process of its own so that
 * bench/kafka-carrier.ts can kill it with SIGKILL: joins group `members` on
 * the topic given and tells its parent once it holds partitions.
 *
 *   (bundled and forked by bench/kafka-carrier.ts) kafka-member.mjs <bootstrap> <topic>
 */
import { Consumer, stringDeserializers } from '@platformatic/kafka';

const [bootstrap = '', topic = ''] = process.argv.slice(2);
const consumer = new Consumer({ groupId: 'members', clientId: 'member', bootstrapBrokers: [bootstrap], deserializers: stringDeserializers, sessionTimeout: 10_000, heartbeatInterval: 1000 });
consumer.on('consumer:group:join', (p: { assignments?: Array<{ partitions: number[] }> | null }) => {
  if ((p.assignments ?? []).some((a) => a.partitions.length > 0)) process.send?.('joined');
});
const stream = await consumer.consume({ topics: [topic], mode: 'latest', autocommit: true, maxWaitTime: 10, sessionTimeout: 10_000, heartbeatInterval: 1000 });
stream.on('data', () => undefined);
