/**
 * Heap per channel of the channel order against the `{ offset, epoch }`
 * position the gateway kept per channel before it: 100 000 channels, each
 * started from history and then passed one publication in order, as
 * continuity does for a connection's personal channel. Both are measured in
 * the same run, after a full collection, and the order is given as a ratio.
 *
 *   npm run bench -- bench/channel-order-memory.ts [--channels 100000]
 *
 * `after an outage` is continuity's order once a broker outage was caught
 * up (`suspend`, then `catchUp`). `lru` is the order of a broker (NATS),
 * which forgets idle or surplus channels and so tracks each one's last use.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ChannelOrder, type ChannelOrderOptions } from '../src/brokers/channel-order.js';
import { int, parseFlags, valued } from './lib/flags.js';

const { channels: N } = parseFlags(
  process.argv.slice(2),
  { channels: 100_000 },
  { '--channels': valued((a, v, flag) => (a.channels = int(flag, v, 1, 10_000_000))) },
  'npm run bench -- bench/channel-order-memory.ts [--channels 100000]',
);

// The runner imports this file into its own process: `gc` is exposed here.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const EPOCH = 'k3x9q2';
const names = Array.from({ length: N }, (_, i) => `#user-${i}`);

/** Heap bytes per channel that `build` keeps (the channel names are allocated before). */
async function perChannel(build: () => unknown): Promise<number> {
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept = await build();
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  if (kept === undefined) throw new Error('nothing kept');
  return (after - before) / N;
}

const positions = (): unknown => {
  const map = new Map<string, { offset: number; epoch: string }>();
  for (const channel of names) map.set(channel, { offset: 11, epoch: EPOCH });
  return map;
};

/** An order passed one publication per channel after its start from history (top 10). */
const ordered = (options: Partial<ChannelOrderOptions<void>>) => (): ChannelOrder => {
  const order = new ChannelOrder({ deliver: () => undefined, predecessor: (pub) => pub.offset! - 1, holdMs: 0, ...options });
  for (const channel of names) {
    order.start(channel, 10, EPOCH);
    order.push({ channel, data: null, offset: 11, epoch: EPOCH, ts: 0 });
  }
  if (order.size !== N) throw new Error(`expected ${N} channels, got ${order.size}`);
  return order;
};

const continuity = ordered({
  fill: () => Promise.resolve({ epoch: EPOCH, messages: [] }),
  lost: () => undefined,
  maxHeld: 1000,
  maxChannels: Infinity,
  maxFills: Infinity,
  fillLimit: Infinity,
  fillAttempts: 1,
});
const outage = async (): Promise<unknown> => {
  const order = continuity();
  order.suspend();
  await order.catchUp();
  return order;
};
const lru = ordered({ holdMs: 100, maxChannels: Infinity, idleMs: 60_000 });

const base = await perChannel(positions);
const rows = [
  { structure: 'Map of { offset, epoch }', bytes: base },
  { structure: 'ChannelOrder (continuity)', bytes: await perChannel(continuity) },
  { structure: '  after an outage', bytes: await perChannel(outage) },
  { structure: 'ChannelOrder (lru)', bytes: await perChannel(lru) },
];
console.log(`${N} channels, Node ${process.version}`);
for (const r of rows) console.log(`${r.structure.padEnd(28)} ${r.bytes.toFixed(1).padStart(7)} B/channel  ×${(r.bytes / base).toFixed(2)}`);
