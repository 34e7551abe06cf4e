/**
 * A Switchboard node: HTTP server, WebSocket endpoint, server API, metrics,
 * and the core that ties sessions to the broker. (Being implemented.)
 */
import type { NodeOptions } from './options.js';

export interface SwitchboardNode {
  /** This node's id. */
  readonly id: string;
  /** The TCP port actually bound (useful with `port: 0`). */
  readonly port: number;
  /** `http://host:port` + path, for tests and logs. */
  url(path?: string): string;
  /** SIGTERM behaviour: stop accepting, close clients with 4100, leave the cluster, resolve when done or after drainTimeout. */
  drain(): Promise<void>;
  /** Stop at once (tests). */
  close(): Promise<void>;
}

export async function startNode(_options: Partial<NodeOptions>): Promise<SwitchboardNode> {
  throw new Error('not implemented yet');
}
