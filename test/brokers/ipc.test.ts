/**
 * The broker of `--workers N` with the memory broker: `IpcBroker`s talking
 * to one `IpcHub` over real message channels (`node:worker_threads`
 * `MessageChannel`). Every batch is JSON-encoded to a string before it is
 * posted, as Node's IPC channel to a cluster worker does by default, so
 * nothing reaches the other side that would not survive the real channel
 * (no `undefined`, no shared objects).
 *
 * Then what only this broker has: a call the primary never answers rejects
 * after its timeout (and readiness drops until an answer comes), a closed
 * channel makes the broker unready and fails calls at once, the pending
 * calls are capped, and a burst of calls travels as one batch.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BrokerHandlers, BrokerPublication } from '../../src/brokers/broker.js';
import { IpcHub } from '../../src/brokers/ipc/hub.js';
import { IpcBroker, type IpcBrokerOptions } from '../../src/brokers/ipc/ipc-broker.js';
import type { IpcPort } from '../../src/brokers/ipc/port.js';
import type { Envelope } from '../../src/brokers/ipc/wire.js';
import { brokerSuite } from './suite.js';

/** One end of a message channel as an `IpcPort`, serializing each batch to JSON text. */
function jsonPort(end: MessagePort): IpcPort & { sent: number } {
  let message: ((value: unknown) => void) | undefined;
  const onClose: Array<() => void> = [];
  const port = {
    sent: 0,
    send(envelope: Envelope) {
      port.sent++;
      end.postMessage(JSON.stringify(envelope));
    },
    onMessage(listener: (value: unknown) => void) {
      message = (text: unknown) => listener(JSON.parse(String(text)));
      end.on('message', message);
    },
    onClose(listener: () => void) {
      onClose.push(listener);
    },
    detach() {
      if (message) end.off('message', message);
      onClose.length = 0;
    },
  };
  end.once('close', () => {
    for (const l of onClose) l();
  });
  return port;
}

/** A hub and a way to make brokers connected to it, each over a channel of its own. */
function backend(options: IpcBrokerOptions = {}) {
  const hub = new IpcHub();
  const channels: MessageChannel[] = [];
  return {
    hub,
    channels,
    connect(): { broker: IpcBroker; worker: IpcPort & { sent: number }; channel: MessageChannel } {
      const channel = new MessageChannel();
      channels.push(channel);
      hub.attach(jsonPort(channel.port1));
      const worker = jsonPort(channel.port2);
      return { broker: new IpcBroker(worker, options), worker, channel };
    },
    async cleanup(): Promise<void> {
      await hub.close();
      for (const c of channels.splice(0)) {
        c.port1.close();
        c.port2.close();
      }
    },
  };
}

brokerSuite('ipc', async () => {
  const b = backend();
  return { make: () => b.connect().broker, cleanup: () => b.cleanup() };
});

interface Seen {
  pubs: BrokerPublication[];
  ready: boolean[];
  handlers: BrokerHandlers;
}

function seen(): Seen {
  const s: Seen = {
    pubs: [],
    ready: [],
    handlers: {
      onPublication: (p) => void s.pubs.push(p),
      onReadyChange: (r) => void s.ready.push(r),
      onControl: () => undefined,
    },
  };
  return s;
}

/** Wraps a port so that a test can drop what the worker sends, as if the primary stopped answering. */
function gated(port: IpcPort): IpcPort & { blocked: boolean } {
  const gate = {
    blocked: false,
    send: (e: Envelope) => {
      if (!gate.blocked) port.send(e);
    },
    onMessage: (l: (v: unknown) => void) => port.onMessage(l),
    onClose: (l: () => void) => port.onClose(l),
    detach: () => port.detach(),
  };
  return gate;
}

describe('ipc broker: the channel to the primary', () => {
  let cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  function setup(options: IpcBrokerOptions = {}) {
    const b = backend();
    cleanups.push(() => b.cleanup());
    const channel = new MessageChannel();
    b.channels.push(channel);
    b.hub.attach(jsonPort(channel.port1));
    const port = gated(jsonPort(channel.port2));
    const broker = new IpcBroker(port, options);
    cleanups.unshift(() => broker.close());
    return { ...b, broker, port, channel };
  }

  it('a call the primary never answers rejects after the timeout; readiness drops until an answer comes', async () => {
    const { broker, port } = setup({ callTimeoutMs: 300 });
    const s = seen();
    await broker.start('n-timeout', s.handlers);
    expect(broker.ready).toBe(true);

    port.blocked = true;
    const began = Date.now();
    await expect(broker.publish({ channel: 'c', data: 1, ts: Date.now() }, null)).rejects.toThrow(/no answer from the primary within 300 ms/);
    expect(Date.now() - began).toBeGreaterThanOrEqual(290);
    expect(broker.ready).toBe(false);
    expect(s.ready).toEqual([false]);

    port.blocked = false;
    expect(await broker.publish({ channel: 'c', data: 2, ts: Date.now() }, { size: 10, ttlMs: 60_000 })).toMatchObject({ offset: 1 });
    expect(broker.ready).toBe(true);
    expect(s.ready).toEqual([false, true]);
  });

  it('when the channel closes: unready at once, waiting and later calls reject, and the hub drops the node', async () => {
    const { broker, port, channel, hub } = setup({ callTimeoutMs: 60_000 });
    const other = backendBroker(hub, cleanups);
    const s = seen();
    await broker.start('n-gone', s.handlers);
    await broker.subscribe('room');
    const o = seen();
    await other.start('n-other', o.handlers);
    expect(hub.size).toBe(2);

    port.blocked = true;
    const waiting = broker.store.presence('room');
    const began = Date.now();
    channel.port1.close();
    // long before the 60 s call timeout
    await expect(waiting).rejects.toThrow(/IPC channel to the primary closed/);
    expect(Date.now() - began).toBeLessThan(5_000);
    expect(broker.ready).toBe(false);
    expect(s.ready).toEqual([false]);
    await expect(broker.subscribe('x')).rejects.toThrow(/closed/);
    await vi.waitFor(() => expect(hub.size).toBe(1), { timeout: 5_000, interval: 20 });

    // the node is off the bus: nothing published reaches it any more
    await other.publish({ channel: 'room', data: 'after', ts: Date.now() }, null, { to: 'all' });
    await vi.waitFor(() => expect(o.pubs.map((p) => p.data)).toEqual(['after']), { timeout: 5_000, interval: 20 });
    expect(s.pubs).toEqual([]);
    // close() of a broker whose primary is gone still resolves
    await broker.close();
  });

  it('caps the calls waiting for an answer', async () => {
    const { broker, port } = setup({ callTimeoutMs: 60_000, maxPending: 3 });
    await broker.start('n-cap', seen().handlers);
    port.blocked = true;
    const waiting = [broker.store.presence('a'), broker.store.presence('b'), broker.store.presence('c')];
    for (const w of waiting) w.catch(() => undefined);
    await expect(broker.store.presence('d')).rejects.toThrow(/3 calls to the primary are already waiting/);
  });

  it('sends a burst of calls as one batch, and answers each', async () => {
    const b = backend();
    cleanups.push(() => b.cleanup());
    const { broker, worker } = b.connect();
    cleanups.unshift(() => broker.close());
    await broker.start('n-batch', seen().handlers);
    const before = worker.sent;
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => broker.publish({ channel: 'burst', data: i, ts: Date.now() }, { size: 500, ttlMs: 60_000 })),
    );
    expect(results.map((r) => r.offset)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(worker.sent - before).toBe(1);
  });

  it('reports a message it cannot read and goes on', async () => {
    const faults: string[] = [];
    const b = backend();
    cleanups.push(() => b.cleanup());
    const channel = new MessageChannel();
    b.channels.push(channel);
    b.hub.attach(jsonPort(channel.port1));
    const broker = new IpcBroker(jsonPort(channel.port2), { onError: (err) => void faults.push(err.message) });
    cleanups.unshift(() => broker.close());
    await broker.start('n-faults', seen().handlers);
    // as if the primary sent garbage in a batch, and a message that is not ours at all
    channel.port1.postMessage(JSON.stringify({ sbipc: [{ t: 'zz' }, 42] }));
    channel.port1.postMessage(JSON.stringify({ hello: 'other user of the channel' }));
    await vi.waitFor(() => expect(faults).toEqual(['undecodable message from the primary', 'undecodable message from the primary']), { timeout: 5_000, interval: 20 });
    expect(await broker.registry.registered('x')).toEqual([]);
    expect(broker.ready).toBe(true);
  });
});

/** A second broker on the same hub, closed after the test. */
function backendBroker(hub: IpcHub, cleanups: Array<() => Promise<void>>): IpcBroker {
  const channel = new MessageChannel();
  hub.attach(jsonPort(channel.port1));
  const broker = new IpcBroker(jsonPort(channel.port2));
  cleanups.unshift(async () => {
    await broker.close();
    channel.port1.close();
    channel.port2.close();
  });
  return broker;
}
