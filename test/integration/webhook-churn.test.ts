/**
 * Events while users come and go across three node processes over one
 * redis-server, one node killed with SIGKILL and another restarted (drained
 * with SIGTERM, started again under its id) along the way. What the backend
 * keeps after dropping repeated ids must be, for every user, online and
 * offline alternating from an online, ending offline once everyone has
 * left: no transition lost, none twice, none out of order.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { prng } from '../../bench/lib/random.js';
import { api } from '../helpers/api.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'webhook-churn-secret-0123456789abcdef';
const USERS = Array.from({ length: 10 }, (_, i) => `churn-${i}`);
const STEPS = 90;

let redis: RedisProcess;
let receiver: WebhookReceiver;
const nodes = new Map<string, NodeProcess>();
const open: Array<{ user: string; node: string; client: RawClient }> = [];

function args(): string[] {
  return ['--broker', redis.url, '--insecure', '--webhook', receiver.url, '--webhook-secret', SECRET, '--heartbeat', '1', '--dead-after-beats', '2'];
}

beforeAll(async () => {
  redis = await startRedis();
  receiver = await WebhookReceiver.start(SECRET);
  for (const id of ['ch-a', 'ch-b', 'ch-c']) nodes.set(id, await startNodeProcess(id, args()));
}, 60_000);

afterAll(async () => {
  await Promise.all(open.map((o) => o.client.close()));
  await Promise.all([...nodes.values()].map((n) => n.stop()));
  await receiver?.close();
  await redis?.stop();
}, 30_000);

describe('events under churn, a kill and a restart', () => {
  it("every user's transitions arrive once each, alternating, in order", async () => {
    const seed = Number(process.env.SWITCHBOARD_TEST_SEED ?? Date.now() % 100_000);
    const rnd = prng(seed);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
    for (let step = 0; step < STEPS; step++) {
      if (step === 30) {
        // A crash: the node's sockets die with it, and its entries go when the others see it dead.
        await nodes.get('ch-c')!.kill();
        nodes.delete('ch-c');
        for (let i = open.length - 1; i >= 0; i--) if (open[i]!.node === 'ch-c') open.splice(i, 1);
      }
      if (step === 60) {
        // A rolling restart of one node: drained (its clients closed with 4100), then started again under its id.
        const b = nodes.get('ch-b')!;
        await b.stop();
        for (let i = open.length - 1; i >= 0; i--) if (open[i]!.node === 'ch-b') open.splice(i, 1);
        nodes.set('ch-b', await startNodeProcess('ch-b', args(), {}, b.port));
      }
      const user = pick(USERS);
      const mine = open.filter((o) => o.user === user);
      if (mine.length > 0 && rnd() < 0.5) {
        const gone = pick(mine);
        open.splice(open.indexOf(gone), 1);
        await gone.client.close();
      } else {
        const node = pick([...nodes.keys()]);
        open.push({ user, node, client: await RawClient.connect(nodes.get(node)!.ws(`user=${user}`)) });
      }
    }
    await Promise.all(open.splice(0).map((o) => o.client.close()));
    const any = [...nodes.values()][0]!;
    // Everyone has left once no node lists a session of theirs (the dead node's entries dropped too).
    await vi.waitFor(async () => {
      for (const user of USERS) expect((await api(any.url(), 'GET', `/api/users/${user}`, undefined, null)).body.online, user).toBe(false);
    }, { timeout: 15_000, interval: 200 });
    const seen = USERS.filter((u) => receiver.typesOf(u).length > 0);
    await vi.waitFor(() => {
      for (const user of seen) expect(receiver.typesOf(user).at(-1), `${user} (seed ${seed})`).toBe('offline');
    }, { timeout: 15_000, interval: 100 });
    for (const user of seen) {
      const types = receiver.typesOf(user);
      expect(types, `${user} (seed ${seed})`).toEqual(types.map((_, i) => (i % 2 === 0 ? 'online' : 'offline')));
    }
    expect(seen.length).toBeGreaterThan(USERS.length / 2);
    // Repeats, if any, carry the very same event.
    const byId = new Map<string, unknown>();
    for (const e of receiver.accepted()) {
      if (byId.has(e.id)) expect(e, `seed ${seed}`).toEqual(byId.get(e.id));
      byId.set(e.id, e);
    }
  });
});
