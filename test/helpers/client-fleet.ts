/**
 * A fleet of SDK clients, one per user, for reconnect storms (the
 * integration test and `bench/reconnect-storm.ts`): every client connects
 * first to one node, and every later attempt goes to one of the
 * `reconnectUrls` at random through `resolveUrl`, as a load balancer that
 * knows the first node is gone would send it.
 *
 * Each client records what a storm is judged by: when it dropped after
 * `arm()`, when it was welcomed again and whether that welcome recovered
 * everything, how many attempts failed in between (refused upgrades show up
 * as 1006), and every round number the publisher sent it on its personal
 * channel (`data: {r}`) with its offset, so losses, duplicates and
 * reorderings can be counted against what the publisher had confirmed.
 */
import WebSocket from 'ws';
import { SwitchboardClient, type ClientOptions } from '../../src/client/index.js';
import { sleep } from './wait.js';

/** How clients back off: the SDK's full jitter, or a fixed delay without jitter (what naive clients do). */
export type FleetBackoff = { kind: 'jitter'; min: number; max: number } | { kind: 'fixed'; delayMs: number };

export interface FleetOptions {
  users: string[];
  /** The first connection of every client (`?user=` is added). */
  firstUrl: string;
  /** Where every later attempt goes, one picked at random per attempt. */
  reconnectUrls: string[];
  backoff: FleetBackoff;
  /** Clients started per second during the initial connect (the SDK retries refusals meanwhile). */
  connectRate: number;
  /** The SDK's `connectTimeout`, ms (default the SDK's, 10 s). */
  connectTimeout?: number;
}

/** What one client saw since `arm()`. */
export interface StormRecord {
  user: string;
  /** ms timestamps (Date.now) of the first drop after `arm()` and of the next welcome. */
  droppedAt?: number;
  reconnectedAt?: number;
  /** The node of that welcome, and whether it recovered everything missed. */
  node?: string;
  recovered?: boolean;
  /** Attempts that ended without a welcome between the drop and the welcome. */
  failedAttempts: number;
  /** Close codes of those failed attempts, counted. */
  failCodes: Record<string, number>;
  /** Every round received on the personal channel, in arrival order (duplicates included). */
  rounds: number[];
  /** The offset each of those arrived with (same order). */
  offsets: number[];
}

const user = (url: string, name: string): string => {
  const u = new URL(url);
  u.searchParams.set('user', name);
  return u.toString();
};

class FleetClient {
  readonly client: SwitchboardClient;
  readonly record: StormRecord;
  armed = false;
  connectedOnce = false;

  constructor(name: string, opts: FleetOptions) {
    this.record = { user: name, failedAttempts: 0, failCodes: {}, rounds: [], offsets: [] };
    const backoff: Partial<ClientOptions> =
      opts.backoff.kind === 'jitter'
        ? { minReconnectDelay: opts.backoff.min, maxReconnectDelay: opts.backoff.max }
        : // min = max and a random source pinned just under 1: every delay is delayMs - 1, no jitter.
          { minReconnectDelay: opts.backoff.delayMs, maxReconnectDelay: opts.backoff.delayMs, random: () => 0.999_999 };
    this.client = new SwitchboardClient({
      url: user(opts.firstUrl, name),
      WebSocket,
      resolveUrl: async () => {
        if (!this.connectedOnce) return user(opts.firstUrl, name);
        return user(opts.reconnectUrls[Math.floor(Math.random() * opts.reconnectUrls.length)]!, name);
      },
      ...(opts.connectTimeout !== undefined ? { connectTimeout: opts.connectTimeout } : {}),
      ...backoff,
    });
    this.client.on('connected', (e) => {
      this.connectedOnce = true;
      const r = this.record;
      if (this.armed && r.droppedAt !== undefined && r.reconnectedAt === undefined) {
        r.reconnectedAt = Date.now();
        r.node = e.node;
        r.recovered = e.wasRecovering && e.recovered;
      }
    });
    this.client.on('disconnected', (e) => {
      const r = this.record;
      if (!this.armed || r.reconnectedAt !== undefined) return;
      if (r.droppedAt === undefined) {
        r.droppedAt = Date.now();
        return;
      }
      r.failedAttempts++;
      r.failCodes[e.code] = (r.failCodes[e.code] ?? 0) + 1;
    });
    this.client.on('personal', (pub) => {
      const round = (pub.data as { r?: unknown } | null)?.r;
      if (typeof round !== 'number') return;
      this.record.rounds.push(round);
      this.record.offsets.push(pub.offset ?? -1);
    });
    // Refused attempts are reported as errors too; the records above count them.
    this.client.on('error', () => undefined);
  }
}

export class ClientFleet {
  private readonly clients: FleetClient[];

  constructor(private readonly opts: FleetOptions) {
    this.clients = opts.users.map((name) => new FleetClient(name, opts));
  }

  get size(): number {
    return this.clients.length;
  }

  /** Start every client at `connectRate` per second; resolves once all are connected, rejects after `timeoutMs`. */
  async connectAll(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const perTick = Math.max(1, Math.round(this.opts.connectRate / 20));
    for (let i = 0; i < this.clients.length; i += perTick) {
      for (const c of this.clients.slice(i, i + perTick)) c.client.connect();
      await sleep(50);
    }
    while (this.connected() < this.clients.length) {
      if (Date.now() > deadline) throw new Error(`only ${this.connected()} of ${this.clients.length} clients connected within ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  /** Clients connected now. */
  connected(): number {
    let n = 0;
    for (const c of this.clients) if (c.client.state === 'connected') n++;
    return n;
  }

  /** From now on, each client records its next drop and the welcome that follows. */
  arm(): void {
    for (const c of this.clients) c.armed = true;
  }

  /** Clients welcomed again since their drop after `arm()`. */
  reconnected(): number {
    let n = 0;
    for (const c of this.clients) if (c.record.reconnectedAt !== undefined) n++;
    return n;
  }

  /** Distinct rounds each client received, in the order of `users`. */
  distinctRounds(): number[] {
    return this.clients.map((c) => new Set(c.record.rounds).size);
  }

  records(): StormRecord[] {
    return this.clients.map((c) => c.record);
  }

  close(): void {
    for (const c of this.clients) c.client.disconnect();
  }
}

