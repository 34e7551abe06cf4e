/**
 * Nodes and raw clients for integration tests, closed after each test
 * (clients) and after the file (nodes).
 */
import { afterAll, afterEach } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import type { NodeOptionsInput } from '../../src/server/options.js';
import { RawClient } from './raw-client.js';

/** Options every test node starts with: loopback, ephemeral port, insecure, quiet, API key `test-key`. */
export const TEST_NODE: NodeOptionsInput = {
  port: 0,
  host: '127.0.0.1',
  insecure: true,
  logLevel: 'silent',
  apiKeys: ['test-key'],
};

export function useNodes(): {
  node: (opts?: NodeOptionsInput) => Promise<SwitchboardNode>;
  connect: (n: SwitchboardNode, query: string) => Promise<RawClient>;
} {
  const nodes: SwitchboardNode[] = [];
  const clients: RawClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.close()));
  });
  return {
    async node(opts = {}) {
      const n = await startNode({ ...TEST_NODE, ...opts });
      nodes.push(n);
      return n;
    },
    async connect(n, query) {
      const c = await RawClient.connect(`ws://127.0.0.1:${n.port}/ws?${query}`);
      clients.push(c);
      return c;
    },
  };
}
