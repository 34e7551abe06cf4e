/**
 * Events from one embedded node on the in-process broker (`startNode` with
 * `webhook`): the same log and sender as over Redis, for a single node;
 * and a node on a broker without an event log refuses to start.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { startNode } from '../../src/server/node.js';
import { TEST_NODE, useNodes } from '../helpers/fixture.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'memory-webhook-secret';
const receivers: WebhookReceiver[] = [];
afterAll(async () => Promise.all(receivers.map((r) => r.close())));

describe('events from a node on the memory broker', () => {
  const { node, connect } = useNodes();

  it('reports online and offline, signed, in order', async () => {
    const receiver = await WebhookReceiver.start(SECRET);
    receivers.push(receiver);
    const n = await node({ nodeId: 'mem-1', webhook: receiver.url, webhookSecret: SECRET });
    const first = await connect(n, 'user=mia');
    const second = await connect(n, 'user=mia');
    await first.close();
    await second.close();
    await vi.waitFor(() => expect(receiver.typesOf('mia')).toEqual(['online', 'offline']), { timeout: 5000, interval: 20 });
    expect(receiver.accepted().map((e) => e.session)).toEqual([first.welcome.session, second.welcome.session]);
    expect(receiver.requests.every((r) => r.signed)).toBe(true);
  });

  it('refuses to start without the secret', async () => {
    await expect(startNode({ ...TEST_NODE, webhook: 'http://127.0.0.1:9/events' })).rejects.toThrow(/webhookSecret/);
  });
});
