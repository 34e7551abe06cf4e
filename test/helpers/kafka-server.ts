/**
 * Real Apache Kafka brokers for tests, in KRaft mode (no ZooKeeper): one
 * combined broker+controller, or a cluster of n of them whose controller
 * quorum is all n. Each runs on free loopback ports from the jars that
 * scripts/fetch-kafka.sh puts in .cache/kafka/<version>/libs, with its own
 * temporary log dir formatted under a fresh cluster id. A broker is ready
 * once its log says the server started and its port accepts connections.
 * Every wait is bounded, and every JVM is SIGKILLed when the test process
 * exits, so a failing test leaves no brokers behind.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BindError, retryBind, running, stopChild, tempDir, track, waitExit, type ServerProcess } from './children.js';
import { freePortNotIn } from './ports.js';
import { sleep } from './wait.js';

/** The version scripts/fetch-kafka.sh fetches unless told otherwise; both read `$KAFKA_VERSION`. */
const VERSION = process.env.KAFKA_VERSION ?? '4.1.1';
/** The repository: the nearest folder above this file with a package.json (test/helpers/ in tests, .bench-out/ in a bundled benchmark). */
function repository(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}
const CACHE = join(repository(), '.cache', 'kafka', VERSION);
const LIBS = join(CACHE, 'libs');
/** `$JAVA`, else `$JAVA_HOME/bin/java`, else whatever PATH finds. */
const JAVA = process.env.JAVA ?? (process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java');
/**
 * A small heap is plenty for test traffic, and the serial collector and C1
 * only start the JVM faster on two cores than Kafka's G1 defaults.
 */
const JVM_FLAGS = ['-Xms256m', '-Xmx512m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Djava.awt.headless=true'];

/** A lone broker starts in about 3 s; three at once on two cores take several times that. */
const READY_TIMEOUT_MS = 60_000;
/** A clean shutdown moves partition leadership away first; past this it is SIGKILLed. */
const EXIT_TIMEOUT_MS = 15_000;
const FORMAT_TIMEOUT_MS = 60_000;

/**
 * A Kafka node (broker and controller in one JVM). Its folder holds
 * server.properties, log4j2.properties, kafka.log and the log dir `data/`.
 * A stop is SIGTERM (SIGKILL after 15 s); in a cluster a restart needs a
 * majority of the controllers running.
 */
export interface KafkaProcess extends ServerProcess {
  /** The PLAINTEXT (client) port, on 127.0.0.1. */
  port: number;
  /** `127.0.0.1:<port>` */
  bootstrap: string;
  /** The running JVM's process id; `undefined` while stopped. */
  readonly pid: number | undefined;
}

export interface KafkaCluster {
  /** `127.0.0.1:p1,127.0.0.1:p2,…` */
  bootstrap: string;
  nodes: KafkaProcess[];
  /** Stop every node at once (SIGTERM, SIGKILL past 15 s). */
  stop(): Promise<void>;
}

/** Whether scripts/fetch-kafka.sh has fetched the broker's jars. */
export function kafkaAvailable(): boolean {
  return existsSync(join(CACHE, '.complete'));
}

function assertAvailable(): void {
  if (!kafkaAvailable()) {
    throw new Error(`no Kafka ${VERSION} jars in ${LIBS}: run \`bash scripts/fetch-kafka.sh\` (.ci/run does)`);
  }
}

/**
 * A cluster id as `kafka-storage random-uuid` makes it: 16 random bytes in
 * URL-safe base64 without padding. Kafka's own generator skips ids that
 * start with '-' (a command line would take them for an option), and so do we.
 */
function clusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

// ---- configuration ---------------------------------------------------------

interface Ports {
  client: number;
  controller: number;
}

interface Quorum {
  /** Every node's id and ports, this one's included. */
  voters: ReadonlyArray<{ id: number; ports: Ports }>;
  clusterId: string;
}

/**
 * server.properties for one combined node. Replication of the internal
 * topics is the cluster's size, and `min.insync.replicas` 2 from three
 * nodes on, so `acks=all` still succeeds with one node down. Internal
 * topics get few partitions (creating fifty for `__consumer_offsets` makes
 * a group's first join slow) and the timeouts that decide a dead broker or
 * controller are short, so a killed node's partitions move within seconds.
 */
function serverProperties(id: number, dir: string, quorum: Quorum): string {
  const me = quorum.voters.find((v) => v.id === id);
  if (!me) throw new Error(`node ${id} is not among the voters`);
  const n = quorum.voters.length;
  const minIsr = n >= 3 ? 2 : 1;
  const props: Record<string, string | number | boolean> = {
    'process.roles': 'broker,controller',
    'node.id': id,
    'controller.quorum.voters': quorum.voters.map((v) => `${v.id}@127.0.0.1:${v.ports.controller}`).join(','),
    listeners: `PLAINTEXT://127.0.0.1:${me.ports.client},CONTROLLER://127.0.0.1:${me.ports.controller}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${me.ports.client}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'log.dirs': join(dir, 'data'),
    'num.partitions': 3,
    'default.replication.factor': n,
    'min.insync.replicas': minIsr,
    'auto.create.topics.enable': true,
    'offsets.topic.replication.factor': n,
    'offsets.topic.num.partitions': 3,
    'transaction.state.log.replication.factor': n,
    'transaction.state.log.min.isr': minIsr,
    'transaction.state.log.num.partitions': 3,
    'share.coordinator.state.topic.replication.factor': n,
    'share.coordinator.state.topic.min.isr': minIsr,
    'group.initial.rebalance.delay.ms': 0,
    // Two cores: Kafka's thread pools are sized for servers.
    'num.network.threads': 2,
    'num.io.threads': 2,
    'background.threads': 2,
    'num.recovery.threads.per.data.dir': 1,
    'log.cleaner.threads': 1,
    // A killed broker is fenced (its partitions led elsewhere) after 3 s, not 9.
    'broker.heartbeat.interval.ms': 500,
    'broker.session.timeout.ms': 3000,
  };
  return `${Object.entries(props)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`;
}

/** Log to `file` only (Kafka's default writes INFO to stdout). */
function log4jProperties(file: string): string {
  return [
    'status = warn',
    'appender.file.type = File',
    'appender.file.name = file',
    `appender.file.fileName = ${file}`,
    'appender.file.layout.type = PatternLayout',
    'appender.file.layout.pattern = [%d] %p %m (%c)%n',
    'rootLogger.level = INFO',
    'rootLogger.appenderRef.file.ref = file',
    '',
  ].join('\n');
}

// ---- one broker process ----------------------------------------------------

/** Resolves once something accepts a TCP connection on 127.0.0.1:`port`, rejects if nothing does. */
function accepts(port: number, timeoutMs = 500): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => sock.destroy(new Error(`connect :${port} timed out`)), timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve();
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

class KafkaServer implements KafkaProcess {
  private child: ChildProcess | undefined;

  constructor(
    readonly id: number,
    readonly ports: Ports,
    readonly dir: string,
  ) {}

  get port(): number {
    return this.ports.client;
  }

  get bootstrap(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child !== undefined && running(this.child) ? this.child.pid : undefined;
  }

  /** The broker's log4j log and the JVM's own stdout and stderr, in one file. */
  private get logFile(): string {
    return join(this.dir, 'kafka.log');
  }

  private get config(): string {
    return join(this.dir, 'server.properties');
  }

  private logSince(offset: number): string {
    try {
      return readFileSync(this.logFile, 'utf8').slice(offset);
    } catch {
      return '';
    }
  }

  private logTail(offset: number): string {
    return this.logSince(offset).slice(-3000) || '(no log)';
  }

  /** Write the node's files and format its log dir under the quorum's cluster id (once, before the first launch). */
  async format(quorum: Quorum): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(this.config, serverProperties(this.id, this.dir, quorum));
    writeFileSync(join(this.dir, 'log4j2.properties'), log4jProperties(this.logFile));
    // Static voters (controller.quorum.voters): no --standalone / --initial-controllers, which are for a dynamic quorum.
    const args = [...this.javaArgs(), 'kafka.tools.StorageTool', 'format', '--cluster-id', quorum.clusterId, '--config', this.config];
    await new Promise<void>((resolve, reject) => {
      execFile(JAVA, args, { timeout: FORMAT_TIMEOUT_MS }, (err, stdout, stderr) => {
        if (!err) return resolve();
        const hint = (err as NodeJS.ErrnoException).code === 'ENOENT' ? ': install a JRE 17+ (openjdk-17-jre-headless)' : '';
        reject(new Error(`formatting Kafka node ${this.id}'s log dir failed${hint}: ${err.message}\n${stdout}${stderr}`));
      });
    });
  }

  private javaArgs(): string[] {
    return [...JVM_FLAGS, `-Dlog4j2.configurationFile=${join(this.dir, 'log4j2.properties')}`, '-cp', `${LIBS}/*`];
  }

  /** Spawn and wait until it serves; a bind failure rejects with `BindError`. */
  async launch(): Promise<void> {
    const from = existsSync(this.logFile) ? statSync(this.logFile).size : 0;
    const log = openSync(this.logFile, 'a');
    const child = spawn(JAVA, [...this.javaArgs(), 'kafka.Kafka', this.config], { stdio: ['ignore', log, log] });
    closeSync(log);
    this.child = child;
    track(child);
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));

    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`cannot run ${JAVA} (${spawnError.message}): install a JRE 17+ (openjdk-17-jre-headless)`);
      if (!running(child)) {
        const tail = this.logTail(from);
        const msg = `Kafka node ${this.id} (port ${this.port}) exited during startup:\n${tail}`;
        throw /address already in use/i.test(tail) ? new BindError(msg) : new Error(msg);
      }
      // The line is the last of a startup (after the broker is unfenced); the connect shows our listener is the one bound.
      if (/\] Kafka Server started/.test(this.logSince(from))) {
        try {
          await accepts(this.port);
          return;
        } catch {
          // started but not accepting yet
        }
      }
      await sleep(100);
    }
    await this.kill();
    throw new Error(`Kafka node ${this.id} (port ${this.port}) did not start within ${READY_TIMEOUT_MS} ms:\n${this.logTail(from)}`);
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !running(child)) return;
    child.kill('SIGKILL');
    if (!(await waitExit(child, EXIT_TIMEOUT_MS))) throw new Error(`Kafka node ${this.id} survived SIGKILL`);
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 'SIGTERM', EXIT_TIMEOUT_MS, () => this.kill());
  }

  async restart(): Promise<void> {
    await this.stop();
    // The ports were ours a moment ago; they can take a beat before they bind again.
    await retryBind(() => this.launch(), 200);
  }
}

/** Ports not yet taken by this cluster's other nodes. */
async function pickPorts(taken: Set<number>): Promise<Ports> {
  const pick = (): Promise<number> => freePortNotIn(taken);
  return { client: await pick(), controller: await pick() };
}

/**
 * Format and launch `size` nodes (ids 1…size) under `root`, a fresh set of
 * ports and directories on each attempt, as a port taken between picking
 * and binding fails only that attempt.
 */
async function launchNodes(root: string, size: number): Promise<KafkaServer[]> {
  assertAvailable();
  return retryBind(async (attempt) => {
    const taken = new Set<number>();
    const voters: Array<{ id: number; ports: Ports }> = [];
    for (let id = 1; id <= size; id++) voters.push({ id, ports: await pickPorts(taken) });
    const quorum: Quorum = { voters, clusterId: clusterId() };
    const nodes = voters.map((v) => new KafkaServer(v.id, v.ports, size === 1 ? join(root, `a${attempt}`) : join(root, `a${attempt}-node${v.id}`)));
    try {
      await Promise.all(nodes.map((n) => n.format(quorum)));
      // Together: a broker finishes starting only once the controller quorum has a leader, which needs a majority up.
      await Promise.all(nodes.map((n) => n.launch()));
      return nodes;
    } catch (err) {
      await Promise.all(nodes.map((n) => n.kill()));
      throw err;
    }
  });
}

/** Start one combined broker+controller on free loopback ports; resolves once it serves. */
export async function startKafka(): Promise<KafkaProcess> {
  const [node] = await launchNodes(tempDir('switchboard-kafka-'), 1);
  return node!;
}

/**
 * Start `size` combined broker+controller nodes whose controller quorum is
 * all of them; resolves once every node serves. Internal and auto-created
 * topics are replicated to every node (so `__consumer_offsets` can only be
 * created while all nodes run: let a consumer group join before killing
 * one), with `min.insync.replicas` 2 from three nodes on.
 */
export async function startKafkaCluster(size = 3): Promise<KafkaCluster> {
  const nodes = await launchNodes(tempDir('switchboard-kafka-cluster-'), size);
  return {
    bootstrap: nodes.map((n) => n.bootstrap).join(','),
    nodes,
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}
