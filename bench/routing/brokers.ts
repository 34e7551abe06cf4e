// The brokers the benchmark runs over, one fresh instance per run: the URL
// the nodes get, and the broker's traffic and CPU counters, read around the
// measured window.
//
// - Redis: a fresh `redis-server`; `INFO stats` bytes, `INFO cpu`.
// - NATS: a fresh `nats-server -js`; `/varz` in_bytes + out_bytes (client
//   traffic, JetStream API calls included), the process's CPU time.
// - RabbitMQ: the server already on 127.0.0.1:5672 with a prefix of its own
//   per run, and a fresh `redis-server` as its store. Bytes: recv_oct +
//   send_oct of this run's AMQP connections (`rabbitmqctl list_connections`,
//   picked by the nodes' client ports) plus the store's `INFO stats`. CPU:
//   the whole RabbitMQ server process (others' use of it included) plus the
//   store's.
//
// A figure that cannot be read is NaN (printed n/a), with the reason in `notes`.
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { startNats, type NatsProcess } from '../../test/helpers/nats-server.js';
import { type RedisProcess, startRedis } from '../../test/helpers/redis-server.js';
import { BROKERS, type BrokerKind, type BrokerName, RABBITMQ_PORT, RABBITMQ_USER, RABBITMQCTL_TIMEOUT_MS } from './settings.js';
import type { BenchNode } from '../lib/nodes.js';
import { cpuMs } from '../lib/procs.js';
import { redisCpuMs, redisInfo } from '../lib/redis.js';
import { getJson } from '../lib/http.js';
import { commandVersion } from '../lib/report.js';
import { clientPorts, listenerPid } from './sockets.js';

const run = promisify(execFile);

export interface BrokerBytes {
  /** Bytes in + out at the broker (RabbitMQ: this run's connections only). */
  broker: number;
  /** Bytes in + out at the Redis store (RabbitMQ only, else 0). */
  store: number;
}

export interface BenchBroker {
  kind: BrokerKind;
  /** The nodes' `--broker`. */
  url: string;
  /** `nodes`: this run's node processes, whose connections are counted. */
  bytes(nodes: BenchNode[]): Promise<BrokerBytes>;
  /** CPU time of the broker's processes, ms. */
  cpuMs(): Promise<number>;
  /** Why a figure is n/a, or what it includes beyond this run; each said once. */
  notes: Set<string>;
  /** The server's version, for the result file. */
  version(): Promise<string>;
  stop(): Promise<void>;
}

async function redisBytes(redis: RedisProcess): Promise<number> {
  const stats = await redisInfo(redis.port, 'stats');
  return Number(stats.get('total_net_input_bytes')) + Number(stats.get('total_net_output_bytes'));
}

async function redisVersion(redis: RedisProcess): Promise<string> {
  return (await redisInfo(redis.port, 'server')).get('redis_version') ?? 'unknown';
}

async function startRedisBroker(): Promise<BenchBroker> {
  const redis = await startRedis();
  return {
    kind: BROKERS.redis,
    url: redis.url,
    notes: new Set(),
    bytes: async () => ({ broker: await redisBytes(redis), store: 0 }),
    cpuMs: () => redisCpuMs(redis.port),
    version: () => redisVersion(redis),
    stop: () => redis.stop(),
  };
}

interface Varz {
  in_bytes: number;
  out_bytes: number;
  version: string;
}

async function startNatsBroker(): Promise<BenchBroker> {
  const nats: NatsProcess = await startNats();
  const notes = new Set<string>();
  return {
    kind: BROKERS.nats,
    url: nats.url,
    notes,
    bytes: async () => {
      const v = await getJson<Varz>(nats.monitorPort, '/varz');
      return { broker: v.in_bytes + v.out_bytes, store: 0 };
    },
    cpuMs: async () => {
      if (nats.pid !== undefined) return cpuMs(nats.pid);
      notes.add('nats-server not running when its CPU was read');
      return NaN;
    },
    version: async () => (await getJson<Varz>(nats.monitorPort, '/varz')).version,
    stop: () => nats.stop(),
  };
}

let runs = 0;

/** recv_oct + send_oct of the RabbitMQ connections whose client port is in `ports`; NaN (and a note) when unreadable. */
async function amqpBytes(ports: Set<number>, expected: number, notes: Set<string>): Promise<number> {
  let stdout: string;
  try {
    ({ stdout } = await run('rabbitmqctl', ['list_connections', '-q', '--no-table-headers', 'peer_port', 'recv_oct', 'send_oct'], { timeout: RABBITMQCTL_TIMEOUT_MS }));
  } catch (err) {
    notes.add(`rabbitmqctl list_connections failed (${(err as Error).message.split('\n', 1)[0] ?? ''})`);
    return NaN;
  }
  let sum = 0;
  let found = 0;
  for (const line of stdout.split('\n')) {
    const [port, recv, send] = line.trim().split(/\s+/).map(Number);
    if (port !== undefined && ports.has(port)) {
      found++;
      sum += (recv ?? NaN) + (send ?? NaN);
    }
  }
  if (found !== expected) {
    notes.add(`rabbitmqctl listed ${found} of the nodes' ${expected} connections`);
    if (found === 0) return NaN;
  }
  return sum;
}

async function startRabbitBroker(): Promise<BenchBroker> {
  const store = await startRedis();
  const notes = new Set<string>();
  const server = listenerPid(RABBITMQ_PORT);
  if (server === undefined) notes.add(`no process seen listening on ${RABBITMQ_PORT}: RabbitMQ CPU unknown`);
  // One prefix per run: exchanges and queues of other runs (and other users of this RabbitMQ) stay apart.
  const prefix = `bench-${process.pid}-${++runs}`;
  return {
    kind: BROKERS.rabbitmq,
    url: `amqp://${RABBITMQ_USER}@127.0.0.1:${RABBITMQ_PORT}/?store=${store.url}&prefix=${prefix}`,
    notes,
    bytes: async (nodes) => {
      const pids = nodes.map((n) => n.proc.pid).filter((p): p is number => p !== undefined);
      const ports = clientPorts(pids, RABBITMQ_PORT);
      return { broker: await amqpBytes(ports, nodes.length, notes), store: await redisBytes(store) };
    },
    cpuMs: async () => {
      let own = NaN;
      try {
        if (server !== undefined) own = cpuMs(server);
      } catch {
        notes.add('RabbitMQ server process gone: its CPU unknown');
      }
      return own + (await redisCpuMs(store.port));
    },
    version: async () => `${commandVersion('rabbitmqctl', ['version'], RABBITMQCTL_TIMEOUT_MS)} (store: Redis ${await redisVersion(store)})`,
    stop: () => store.stop(),
  };
}

export function startBroker(name: BrokerName): Promise<BenchBroker> {
  switch (name) {
    case 'redis':
      return startRedisBroker();
    case 'nats':
      return startNatsBroker();
    case 'rabbitmq':
      return startRabbitBroker();
  }
}

function answers(port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, timeout: timeoutMs });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('timeout', () => done(false));
    s.once('error', () => done(false));
  });
}

/**
 * Before any run: every broker asked for starts (RabbitMQ: answers), so a
 * missing one fails now rather than after the others' runs; their versions.
 */
export async function preflight(names: BrokerName[]): Promise<Record<string, string>> {
  const versions: Record<string, string> = {};
  for (const name of names) {
    if (name === 'rabbitmq' && !(await answers(RABBITMQ_PORT))) {
      throw new Error(`RabbitMQ does not answer on 127.0.0.1:${RABBITMQ_PORT}: start it, or leave rabbitmq out of --brokers`);
    }
    const b = await startBroker(name);
    try {
      versions[name] = await b.version();
    } finally {
      await b.stop();
    }
  }
  return versions;
}
