/**
 * Clients of the chaos suite: the project's SDK (`SwitchboardClient`) over
 * the `ws` package, connecting through the load balancer with a fresh token
 * per attempt. Each one writes every personal message it hands the app, and
 * every reset it is told about, to the scenario's ledger; it keeps the `ws`
 * sockets the SDK opened, so a scenario can stop reading one (`pause`).
 */
import { WebSocket } from 'ws';
import { SwitchboardClient, type ConnectedEvent, type DisconnectedEvent, type Publication } from '../../../src/client/index.js';
import { tokenFor } from './auth.js';
import type { Ledger } from './ledger.js';
import { sleep } from '../wait.js';

export interface ChaosClientOptions {
  /** `?device=` of the connection (the server keeps acknowledged offsets per user and device). */
  device?: string;
  /** Silence tolerated beyond the server's ping interval before the client gives up on a connection, ms. Default 1000. */
  heartbeatGrace?: number;
  /** At most one ack per channel per this many ms. Default 200. */
  ackInterval?: number;
}

/** Distinct per client object, across the test file, so that a user's successive clients stay apart in the ledger. */
let instances = 0;

/** The seq of a message the publisher sent (`{seq, …}`), or -1 for anything else (then it shows up as out of order). */
function seqOf(data: unknown): number {
  const seq = (data as { seq?: unknown } | null)?.seq;
  return typeof seq === 'number' ? seq : -1;
}

export class ChaosClient {
  readonly id = ++instances;
  readonly client: SwitchboardClient;
  /** Every WebSocket the SDK opened, oldest first. */
  readonly sockets: WebSocket[] = [];
  readonly connects: ConnectedEvent[] = [];
  readonly drops: DisconnectedEvent[] = [];

  constructor(
    readonly user: string,
    url: string,
    ledger: Ledger,
    opts: ChaosClientOptions = {},
  ) {
    const sockets = this.sockets;
    /** The `ws` class, remembering each instance the SDK creates. */
    class RecordedWebSocket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols);
        sockets.push(this);
      }
    }
    this.client = new SwitchboardClient({
      url,
      WebSocket: RecordedWebSocket,
      getToken: () => tokenFor(user),
      ...(opts.device !== undefined ? { device: opts.device } : {}),
      minReconnectDelay: 100,
      maxReconnectDelay: 1000,
      connectTimeout: 3000,
      heartbeatGrace: opts.heartbeatGrace ?? 1000,
      ackInterval: opts.ackInterval ?? 200,
    });
    this.client.on('personal', (m: Publication) => {
      ledger.deliver({ user, client: this.id, seq: seqOf(m.data), offset: m.offset ?? -1, epoch: m.epoch ?? '', at: Date.now() });
    });
    this.client.on('reset', (e) => {
      if (e.channel !== `user:${user}`) return;
      ledger.reset({
        user,
        client: this.id,
        ...(e.offset !== undefined ? { offset: e.offset } : {}),
        ...(e.epoch !== undefined ? { epoch: e.epoch } : {}),
        at: Date.now(),
      });
    });
    this.client.on('connected', (e) => this.connects.push(e));
    this.client.on('disconnected', (e) => this.drops.push(e));
  }

  get connected(): boolean {
    return this.client.state === 'connected';
  }

  /** The node of the current session, while connected. */
  get node(): string | undefined {
    return this.client.connection?.node;
  }

  /** How many welcomes said that recovery failed (`recovered: false` after asking for it). */
  get toldNotRecovered(): number {
    return this.connects.filter((c) => c.wasRecovering && !c.recovered).length;
  }

  connect(): void {
    this.client.connect();
  }

  /** Stop reading the current socket: the server's writes pile up in its buffers. */
  pause(): void {
    this.sockets.at(-1)?.pause();
  }

  resume(): void {
    this.sockets.at(-1)?.resume();
  }

  close(): void {
    this.client.disconnect();
  }
}

/** Resolves once every client is connected; rejects after `timeoutMs` naming the ones that are not. */
export async function allConnected(clients: readonly ChaosClient[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!clients.every((c) => c.connected)) {
    if (Date.now() > deadline) {
      const late = clients.filter((c) => !c.connected).map((c) => `${c.user}(${c.client.state})`);
      throw new Error(`not connected within ${timeoutMs} ms: ${late.join(', ')}`);
    }
    await sleep(25);
  }
}
