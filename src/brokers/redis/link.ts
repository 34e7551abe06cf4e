/**
 * One subscriber connection and the set of channels it holds: classic
 * pub/sub (SUBSCRIBE, standalone Redis) or sharded pub/sub (SSUBSCRIBE, one
 * connection per cluster master). It restores its subscriptions itself on
 * every reconnection and reports when it is (out of) sync.
 */
import type { Redis } from 'ioredis';
import { settleWithin } from '../../shared/time.js';
import { groupBy } from './batches.js';
import { keySlot } from './slot.js';
import { InterestSet, type InterestLink } from './subscriptions.js';

export type PubSubMode = 'classic' | 'sharded';

export interface LinkHooks {
  onMessage(channel: string, message: string): void;
  /** `inSync` may have changed. */
  onChange(): void;
  onError(err: Error, where: string): void;
  /** A sharded subscribe was refused with MOVED/ASK: the cluster's slots changed. */
  onMoved?(): void;
}

export class SubscriberLink implements InterestLink {
  readonly interest: InterestSet;
  private closed = false;
  /** Cut on purpose and not yet back: the socket may still look ready for a moment. */
  private cutting = false;

  constructor(
    readonly conn: Redis,
    private readonly mode: PubSubMode,
    private readonly hooks: LinkHooks,
    readonly label: string,
    maxBatch?: number,
  ) {
    this.interest = new InterestSet(this, (err) => this.sendFailed(err), maxBatch);
    conn.on(mode === 'classic' ? 'message' : 'smessage', (channel: string, message: string) => hooks.onMessage(channel, message));
    conn.on('error', (err: Error) => hooks.onError(err, label));
    conn.on('ready', () => {
      this.cutting = false;
      void this.restore();
    });
    conn.on('close', () => {
      this.interest.lost();
      hooks.onChange();
    });
  }

  get connected(): boolean {
    return !this.closed && !this.cutting && this.conn.status === 'ready';
  }

  get inSync(): boolean {
    return this.interest.inSync;
  }

  /** Connect; the `ready` handler restores the subscriptions. Errors surface through the reconnection loop. */
  connect(): void {
    this.conn.connect().catch(() => undefined);
  }

  async send(op: 'subscribe' | 'unsubscribe', channels: string[]): Promise<void> {
    if (this.mode === 'classic') {
      await (op === 'subscribe' ? this.conn.subscribe(...channels) : this.conn.unsubscribe(...channels));
      return;
    }
    // One SSUBSCRIBE may only name channels of one slot.
    const bySlot = groupBy(channels, keySlot);
    await Promise.all(
      [...bySlot.values()].map((list) => (op === 'subscribe' ? this.conn.ssubscribe(...list) : this.conn.sunsubscribe(...list))),
    );
  }

  /** Health check: a connection that answers nothing is cut, so that it reconnects. */
  async ping(): Promise<void> {
    if (!this.connected) return;
    try {
      await this.conn.ping();
    } catch (err) {
      if (!this.connected) return;
      this.hooks.onError(err instanceof Error ? err : new Error(String(err)), `${this.label} ping`);
      this.reconnect();
    }
  }

  /** Drop the connection and start over on a new one, which restores every subscription. */
  reconnect(): void {
    if (this.closed || this.cutting) return;
    this.cutting = true;
    this.interest.lost();
    this.hooks.onChange();
    this.conn.disconnect(true);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.interest.close();
    await quit(this.conn);
  }

  private async restore(): Promise<void> {
    if (await this.interest.restore()) this.hooks.onChange();
  }

  private sendFailed(err: Error): void {
    this.hooks.onError(err, `${this.label} subscribe`);
    if (/^(MOVED|ASK) /.test(err.message)) this.hooks.onMoved?.();
    // What Redis holds is unknown now: start over on a fresh connection.
    this.reconnect();
  }
}

/** QUIT politely when connected (bounded), then drop the socket either way; no reconnection follows. */
export async function quit(conn: { status: string; quit(): Promise<unknown>; disconnect(): void }, timeoutMs = 1000): Promise<void> {
  if (conn.status === 'ready') await settleWithin(conn.quit(), timeoutMs);
  conn.disconnect();
}
