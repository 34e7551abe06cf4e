/**
 * The node's core without sockets, for fuzzing the frame handler: a real
 * `Gateway` on the in-process broker, sessions that write to a recorder.
 * Thousands of fast-check runs fit in seconds this way; the socket-level
 * fuzz (fewer runs) lives in frame-handler.test.ts.
 */
import { vi } from 'vitest';
import { pino } from 'pino';
import { MemoryBroker } from '../../src/brokers/memory/memory-broker.js';
import type { ServerFrame } from '../../src/protocol/index.js';
import { FrameHandler } from '../../src/server/core/frame-handler.js';
import { Gateway } from '../../src/server/core/gateway.js';
import type { Session, Transport } from '../../src/server/core/session.js';
import { Metrics } from '../../src/server/metrics.js';
import { withDefaults, type NodeOptionsInput } from '../../src/server/options.js';
import { InterestRouting } from '../../src/server/routing/strategies.js';

/** A transport that parses and keeps every frame written, and how it was closed. */
export class Recorder implements Transport {
  readonly frames: ServerFrame[] = [];
  closedWith: { code: number; reason: string } | undefined;
  bufferedAmount = 0;
  send(data: Buffer | string): void {
    this.frames.push(JSON.parse(String(data)) as ServerFrame);
  }
  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
  }
}

export interface Conn {
  session: Session;
  rec: Recorder;
}

/** The per-node bookkeeping that must return to empty when every session is gone. */
export interface CoreState {
  sessions: number;
  subscriptions: number;
  localChannels: number;
  brokerSubscriptions: number;
  positions: number;
}

export class Core {
  private constructor(
    readonly gateway: Gateway,
    readonly handler: FrameHandler,
    readonly metrics: Metrics,
  ) {}

  static async start(opts: NodeOptionsInput = {}): Promise<Core> {
    const options = withDefaults({ nodeId: 'fuzz', logLevel: 'silent', ...opts });
    const metrics = new Metrics({ node: 'fuzz' });
    const gateway = new Gateway('fuzz', options, new MemoryBroker(), new InterestRouting(), metrics, pino({ level: 'silent' }));
    await gateway.start();
    return new Core(gateway, new FrameHandler(gateway, metrics, options.limits.maxSubscriptions), metrics);
  }

  /** A session that has its `welcome`. */
  async open(user: string): Promise<Conn> {
    const rec = new Recorder();
    const session = this.gateway.open({ user, grants: [], transport: rec });
    await vi.waitUntil(() => rec.frames.length > 0, { timeout: 2000, interval: 1 });
    if (rec.frames[0]?.type !== 'welcome') throw new Error(`first frame was ${JSON.stringify(rec.frames[0])}`);
    return { session, rec };
  }

  /** Feed one WebSocket message, as the upgrade layer does. */
  receive(conn: Conn, data: string | Buffer, binary = false): void {
    this.handler.receive(conn.session, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, binary);
  }

  /** Counts read from the gateway's private maps: a leak shows up here before it shows up in the heap. */
  state(): CoreState {
    const g = this.gateway;
    return {
      sessions: g.sessions.size,
      subscriptions: g.subscriptionCount,
      localChannels: g['interest']['local'].size,
      brokerSubscriptions: g['interest']['subscribing'].size,
      positions: g['continuity'].channels,
    };
  }

  close(): Promise<void> {
    return this.gateway.close();
  }
}

