/**
 * The primary of `switchboard start --workers N`: forks N workers with
 * `node:cluster` running the same command, and keeps them running.
 *
 * - The port: the primary holds the listening socket and hands each
 *   accepted connection to a worker in turn (cluster round-robin); it
 *   closes its copy of the descriptor once the worker has it, so the
 *   connections count against each worker's open-file limit, not its own.
 * - The memory broker: the primary holds the one `MemoryBus` (`IpcHub`);
 *   every worker's `IpcBroker` reaches it over the worker's IPC channel.
 *   Other brokers: each worker connects on its own.
 * - A worker that dies is started again after a backoff; one that keeps
 *   dying soon after its start is given up on (see `RestartPolicy`).
 * - SIGTERM/SIGINT: every worker drains (as a single node would); the
 *   primary exits once all have exited, 0 when every drain succeeded.
 *   A second signal kills the workers and exits at once.
 * - SIGHUP: passed on to every worker (each reloads its TLS certificate).
 */
import cluster, { type Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { IpcHub } from '../../brokers/ipc/hub.js';
import { workerPort } from '../../brokers/ipc/port.js';
import type { Env } from '../config/env.js';
import { parseEnv } from '../config/env.js';
import { parseConfigFile } from '../config/file.js';
import { parseFlags } from '../config/flags.js';
import { schemesOf, type NodeOptions } from '../options.js';
import { asWorkerControl, WORKER_INDEX_ENV, WORKER_NODE_ID_ENV, type DrainMessage } from './control.js';
import { RestartPolicy } from './restarts.js';

/** Seconds the primary waits past `drainTimeout` for the workers before it kills them. */
const DRAIN_GRACE = 5;

export interface PrimaryInput {
  /** The flags after `start` (to tell whether --node-id was given). */
  argv: readonly string[];
  env: Env;
  cwd: string;
  options: NodeOptions;
  /** Writes one line for people (stderr). */
  say: (line: string) => void;
  /** Whether to say that the workers are listening. */
  chatty: boolean;
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  startedAt: number;
  /** The node id the worker reported once up. */
  node: string | undefined;
  /** A worker in this slot has been up at least once. */
  everUp: boolean;
  policy: RestartPolicy;
  restart: ReturnType<typeof setTimeout> | undefined;
}

/** Fork the workers and watch them; resolves with the exit code once every worker has exited. */
export function runPrimary(input: PrimaryInput): Promise<number> {
  return new Primary(input).run();
}

class Primary {
  private readonly slots: Slot[];
  private readonly hub: IpcHub | undefined;
  private readonly baseId: string | undefined;
  private stopping = false;
  private announced = false;
  private worst = 0;
  private finish: (code: number) => void = () => undefined;

  constructor(private readonly input: PrimaryInput) {
    const { options } = input;
    this.baseId = nodeIdGiven(input) ? options.nodeId : undefined;
    this.hub = options.broker === 'memory' ? new IpcHub(undefined, { onError: (err, where) => input.say(`warning: ${where}: ${err.message}`) }) : undefined;
    this.slots = Array.from({ length: options.workers }, (_, i) => ({
      index: i + 1,
      worker: undefined,
      startedAt: 0,
      node: undefined,
      everUp: false,
      policy: new RestartPolicy(),
      restart: undefined,
    }));
  }

  run(): Promise<number> {
    const done = new Promise<number>((resolve) => (this.finish = resolve));
    for (const slot of this.slots) this.fork(slot);
    this.handleSignals();
    return done.then(async (code) => {
      await this.hub?.close();
      return code;
    });
  }

  private fork(slot: Slot): void {
    slot.restart = undefined;
    const env: Record<string, string> = { [WORKER_INDEX_ENV]: String(slot.index) };
    if (this.baseId !== undefined) env[WORKER_NODE_ID_ENV] = `${this.baseId}-w${slot.index}`;
    const worker = cluster.fork(env);
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.node = undefined;
    this.hub?.attach(workerPort(worker));
    worker.on('message', (value: unknown) => {
      const control = asWorkerControl(value);
      if (control?.sbworker === 'up') this.up(slot, control.node, control.port);
    });
    worker.on('exit', (code, signal) => this.exited(slot, worker, code, signal));
    // Without a listener an IPC error (a send racing the worker's death) would end the primary; the exit is handled above.
    worker.on('error', (err: Error) => this.input.say(`worker ${slot.index}: ${err.message}`));
  }

  private up(slot: Slot, node: string, port: number): void {
    slot.node = node;
    const again = slot.everUp;
    slot.everUp = true;
    // A drain asked for while it was starting could not reach it yet.
    if (this.stopping) this.askToDrain(slot);
    if (again) this.input.say(`worker ${slot.index} is back: node ${node}`);
    if (this.announced || !this.slots.every((s) => s.everUp)) return;
    this.announced = true;
    if (!this.input.chatty) return;
    const { host } = this.input.options;
    const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
    const nodes = this.slots.map((s) => s.node).join(', ');
    const scheme = schemesOf(this.input.options);
    this.input.say(
      `${this.slots.length} workers listening: demo page ${scheme.http}://${shown}:${port}/, WebSocket ${scheme.ws}://${shown}:${port}/ws (nodes ${nodes})`,
    );
  }

  private exited(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    const how = signal ?? `code ${code ?? 0}`;
    if (this.stopping) {
      if (code !== 0) this.worst = 1;
      this.maybeDone();
      return;
    }
    if (!slot.everUp) {
      // It never got as far as listening (the port is taken, the broker unreachable): the others would fail alike.
      this.input.say(`worker ${slot.index} could not start (${how}): stopping`);
      this.worst = 1;
      this.stop();
      return;
    }
    const delay = slot.policy.next(Date.now() - slot.startedAt);
    const name = `worker ${slot.index}${slot.node === undefined ? '' : ` (node ${slot.node})`}`;
    if (delay === null) {
      this.input.say(`${name} exited (${how}) and keeps dying soon after its start: not starting it again`);
      this.worst = 1;
      if (this.slots.every((s) => s.worker === undefined && s.restart === undefined)) this.finish(1);
      return;
    }
    this.input.say(`${name} exited unexpectedly (${how}): starting it again in ${delay} ms`);
    slot.restart = setTimeout(() => this.fork(slot), delay);
  }

  /** Drain every worker; the primary exits once all have exited. */
  private stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const slot of this.slots) {
      if (slot.restart) clearTimeout(slot.restart);
      slot.restart = undefined;
      if (slot.node !== undefined) this.askToDrain(slot);
    }
    const backstop = this.input.options.drainTimeout + DRAIN_GRACE;
    setTimeout(() => {
      this.input.say(`the workers did not finish draining within ${backstop} s: killing them`);
      this.killAll();
      this.worst = 1;
    }, backstop * 1000).unref();
    this.maybeDone();
  }

  private askToDrain(slot: Slot): void {
    const drain: DrainMessage = { sbworker: 'drain' };
    // A channel that closes meanwhile fails the send: that worker is exiting anyway.
    if (slot.worker?.isConnected()) slot.worker.send(drain, undefined, undefined, () => undefined);
  }

  private maybeDone(): void {
    if (this.slots.every((s) => s.worker === undefined)) this.finish(this.worst);
  }

  private killAll(): void {
    for (const slot of this.slots) slot.worker?.process.kill('SIGKILL');
  }

  private handleSignals(): void {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (this.stopping) {
        this.input.say(`${signal} again: killing the workers without waiting for the drain`);
        this.killAll();
        process.exit(128 + (constants.signals[signal] ?? 0));
      }
      if (this.input.chatty) this.input.say(`${signal}: draining ${this.slots.length} workers for up to ${this.input.options.drainTimeout} s`);
      this.stop();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('SIGHUP', () => {
      for (const slot of this.slots) slot.worker?.process.kill('SIGHUP');
    });
  }
}

/**
 * Whether the node id was set (flag, environment or config file) rather
 * than defaulted: a set id names the workers `<id>-w1`, `<id>-w2`, …; a
 * default one is per process anyway. The sources were read once already by
 * `loadConfig`, so reading them again cannot fail.
 */
function nodeIdGiven({ argv, env, cwd }: PrimaryInput): boolean {
  const flags = parseFlags(argv, cwd);
  if (flags.layer.values.nodeId !== undefined) return true;
  const fromEnv = parseEnv(env, cwd);
  if (fromEnv.layer.values.nodeId !== undefined) return true;
  const file = flags.config ?? fromEnv.config;
  return file !== undefined && parseConfigFile(readFileSync(file, 'utf8'), file).layer.values.nodeId !== undefined;
}
