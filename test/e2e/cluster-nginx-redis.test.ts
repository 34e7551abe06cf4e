/**
 * The whole product, end to end: 3 node processes over a real Redis behind a
 * real nginx doing round-robin, 200 SDK clients, thousands of messages
 * published through random nodes to users and channels. Every client must
 * get every acknowledged message meant for it exactly once and in order —
 * also after one node is killed with SIGKILL mid-run and its clients
 * reconnect through nginx to the others.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { SwitchboardClient } from '../../src/client/index.js';
import type { Publication } from '../../src/protocol/index.js';
import { startNginx, type Nginx } from '../helpers/nginx.js';
import { waitReady } from '../helpers/node-process.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';

const BIN = fileURLToPath(new URL('../../bin/switchboard.js', import.meta.url));
const CLIENTS = 200;
const ROOMS = 10;
const MESSAGES = 3000;
const KEY = 'e2e-key';

interface NodeProc {
  id: string;
  port: number;
  proc: ChildProcess;
}

let redis: RedisProcess;
let nginx: Nginx;
const nodes: NodeProc[] = [];
const clients: SwitchboardClient[] = [];

async function startNodeProcess(id: string, config: string): Promise<NodeProc> {
  const port = await freePort();
  const proc = spawn(
    process.execPath,
    [BIN, 'start', '--config', config, '--broker', redis.url, '--port', String(port), '--host', '127.0.0.1', '--node-id', id],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn' } },
  );
  await waitReady(port, proc);
  return { id, port, proc };
}

/** POST to a node's API; resolves with the result, or undefined when that node could not take it. */
async function publishVia(node: NodeProc, path: string, body: unknown): Promise<{ offset: number; epoch: string } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.port}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    if (res.status !== 200) return undefined;
    return (await res.json()) as { offset: number; epoch: string };
  } catch {
    return undefined;
  }
}

beforeAll(async () => {
  redis = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), 'sb-e2e-'));
  const config = join(dir, 'switchboard.json');
  // Enough history that a client reconnecting mid-burst can recover all it missed.
  writeFileSync(
    config,
    JSON.stringify({
      insecure: true,
      apiKeys: [KEY],
      heartbeat: 1,
      limits: { maxConnectionsPerIpPerSecond: 0 },
      defaultNamespace: { history: { size: 2000, ttl: 600 } },
    }),
  );
  for (const id of ['e2e-1', 'e2e-2', 'e2e-3']) nodes.push(await startNodeProcess(id, config));
  nginx = await startNginx(nodes.map((n) => n.port));
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await nginx?.stop();
  for (const n of nodes) if (n.proc.exitCode === null) n.proc.kill('SIGKILL');
  await redis?.stop();
}, 30_000);

describe('3 nodes, Redis, nginx round-robin, 200 clients', () => {
  it(
    'delivers every acknowledged message exactly once and in order, through a SIGKILL of one node',
    async () => {
      // received[client][channel] = offsets in arrival order
      const received: Array<Map<string, number[]>> = [];
      const wsUrl = `${nginx.url.replace('http', 'ws')}/ws`;
      for (let i = 0; i < CLIENTS; i++) {
        const client = new SwitchboardClient({
          url: wsUrl,
          params: { user: `u${i}` },
          WebSocket: WebSocket as never,
          minReconnectDelay: 200,
          maxReconnectDelay: 2000,
        });
        const got = new Map<string, number[]>();
        received.push(got);
        client.on('message', (m: Publication) => {
          const list = got.get(m.channel) ?? [];
          list.push(m.offset ?? -1);
          got.set(m.channel, list);
        });
        clients.push(client);
        const room = client.subscribe(`room.${i % ROOMS}`);
        client.connect();
        await room.ready(15_000);
      }
      // Clients are spread over the three nodes.
      const perNode = await Promise.all(
        nodes.map(async (n) => ((await (await fetch(`http://127.0.0.1:${n.port}/api/nodes`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { nodes: Array<{ id: string; connections: number }> }).nodes.find((x) => x.id === n.id)?.connections ?? 0),
      );
      expect(perNode.every((c) => c > 30)).toBe(true);

      // Publish through random live nodes; remember what each target acknowledged.
      const acked = new Map<string, Set<number>>();
      const victim = nodes[1]!;
      let killedAt = -1;
      let next = 0;
      const worker = async () => {
        while (next < MESSAGES) {
          const n = next++;
          if (n === MESSAGES / 2 && killedAt < 0) {
            killedAt = n;
            victim.proc.kill('SIGKILL');
          }
          const toUser = n % 3 === 0;
          const target = toUser ? `user:u${(n * 7) % CLIENTS}` : `room.${n % ROOMS}`;
          const body = toUser ? { user: target.slice(5), data: { n } } : { channel: target, data: { n } };
          // A publish a dead node could not take is retried on another: only acknowledged ones count.
          for (let attempt = 0; attempt < 5; attempt++) {
            const via = nodes[Math.floor(Math.random() * nodes.length)]!;
            const result = await publishVia(via, toUser ? '/api/send' : '/api/publish', body);
            if (result) {
              const set = acked.get(target) ?? new Set<number>();
              set.add(result.offset);
              acked.set(target, set);
              break;
            }
          }
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      expect(killedAt).toBe(MESSAGES / 2);

      // Wait (bounded) until every client has every acknowledged message meant for it.
      const expectedFor = (i: number): Array<[string, Set<number>]> => [
        [`room.${i % ROOMS}`, acked.get(`room.${i % ROOMS}`) ?? new Set()],
        [`user:u${i}`, acked.get(`user:u${i}`) ?? new Set()],
      ];
      const missing = () => {
        let lost = 0;
        received.forEach((got, i) => {
          for (const [channel, want] of expectedFor(i)) {
            const have = new Set(got.get(channel) ?? []);
            for (const o of want) if (!have.has(o)) lost++;
          }
        });
        return lost;
      };
      await vi.waitUntil(() => missing() === 0, { timeout: 60_000, interval: 250 }).catch(() => undefined); // the assertions below say what is missing

      let duplicates = 0;
      let outOfOrder = 0;
      received.forEach((got) => {
        for (const offsets of got.values()) {
          if (new Set(offsets).size !== offsets.length) duplicates++;
          for (let k = 1; k < offsets.length; k++) if (offsets[k]! <= offsets[k - 1]!) outOfOrder++;
        }
      });
      const total = [...acked.values()].reduce((s, set) => s + set.size, 0);
      const deliveries = received.reduce((s, got) => s + [...got.values()].reduce((t, l) => t + l.length, 0), 0);
      console.log(`e2e: ${total} messages acknowledged, ${deliveries} deliveries, lost ${missing()}, duplicates ${duplicates}, out of order ${outOfOrder}`);
      expect(total).toBeGreaterThan(MESSAGES * 0.95);
      expect(missing()).toBe(0);
      expect(duplicates).toBe(0);
      expect(outOfOrder).toBe(0);
      // The killed node's clients are on the others now.
      expect(clients.every((c) => c.state === 'connected')).toBe(true);
      expect(clients.every((c) => c.connection?.node !== victim.id)).toBe(true);

      // The dead node leaves /api/nodes, and its sessions leave presence on their own.
      const live = nodes.filter((n) => n !== victim);
      const get = async (path: string) =>
        (await (await fetch(`http://127.0.0.1:${live[0]!.port}${path}`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as {
          nodes?: Array<{ id: string }>;
          members?: Array<{ node: string }>;
        };
      // Declared dead after 3 missed heartbeats of 1 s.
      const listed = async () => (await get('/api/nodes')).nodes?.map((n) => n.id).sort();
      await vi.waitUntil(async () => !(await listed())?.includes(victim.id), { timeout: 10_000, interval: 250 }).catch(() => undefined); // the assertion below says what is missing
      expect(await listed()).toEqual(live.map((n) => n.id).sort());
      let ghosts = Infinity;
      await vi
        .waitUntil(
          async () => {
            ghosts = 0;
            for (let r = 0; r < ROOMS; r++) ghosts += ((await get(`/api/presence/room.${r}`)).members ?? []).filter((m) => m.node === victim.id).length;
            return ghosts === 0;
          },
          { timeout: 10_000, interval: 250 },
        )
        .catch(() => undefined); // the assertion below says how many are left
      expect(ghosts).toBe(0);
      const members = (await get('/api/presence/room.0')).members ?? [];
      expect(members.length).toBe(CLIENTS / ROOMS);
    },
    180_000,
  );
});
