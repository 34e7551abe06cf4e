/**
 * The subscribe and publish hooks in the frame handler, without sockets or
 * HTTP: a fake hook client whose answers the test releases one by one, a
 * session writing to a recorder, the core on the in-process broker. What is
 * asked and when, what is refused, that a subscribe waiting on the hook holds
 * up nothing else, that the last subscription change of a channel wins, and
 * that publishes keep their order whatever the hook's delays.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBroker } from '../../src/brokers/memory/memory-broker.js';
import { ErrorCode, SwitchboardError, type ServerFrame } from '../../src/protocol/index.js';
import { FrameHandler } from '../../src/server/core/frame-handler.js';
import { Gateway } from '../../src/server/core/gateway.js';
import type { Session } from '../../src/server/core/session.js';
import type { HookName } from '../../src/server/hooks/client.js';
import { PublishHook } from '../../src/server/hooks/publish.js';
import { SubscribeHook } from '../../src/server/hooks/subscribe.js';
import { Metrics } from '../../src/server/metrics.js';
import { withDefaults, type NodeOptionsInput } from '../../src/server/options.js';
import { InterestRouting } from '../../src/server/routing/strategies.js';
import { Recorder } from '../fuzz/core.js';

/** One request to the fake backend, answered when the test says. */
interface Call {
  hook: HookName;
  payload: Record<string, unknown>;
  answer(body: Record<string, unknown>): void;
  refuse(code: ErrorCode, message?: string): void;
}

/** A hook client that records each call and leaves it open until the test answers it. */
class FakeHooks {
  readonly calls: Call[] = [];
  call(hook: HookName, _url: string, payload: unknown): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      this.calls.push({
        hook,
        payload: payload as Record<string, unknown>,
        answer: resolve,
        refuse: (code, message = 'refused') => reject(new SwitchboardError(code, message)),
      });
    });
  }
}

let gateway: Gateway | undefined;
afterEach(() => gateway?.close());

async function setup(opts: NodeOptionsInput = {}) {
  const options = withDefaults({
    nodeId: 'n1',
    logLevel: 'silent',
    defaultNamespace: { publish: true },
    namespaces: { guarded: { historySize: 10, historyTtl: 60, presence: false, publish: true, private: false, subscribeHook: true, publishHook: true } },
    ...opts,
  });
  const metrics = new Metrics({ node: 'n1' });
  const gw = new Gateway('n1', options, new MemoryBroker(), new InterestRouting(), metrics, pino({ level: 'silent' }));
  gateway = gw;
  await gw.start();
  const hooks = new FakeHooks();
  const policyOf = (channel: string) => gw.namespaces.of(channel);
  const handler = new FrameHandler(gw, metrics, options.limits.maxSubscriptions, undefined, undefined, {
    subscribe: new SubscribeHook(hooks, 'http://backend/subscribe', policyOf),
    publish: new PublishHook(hooks, 'http://backend/publish', policyOf, options.limits.maxFrameBytes),
  });
  /** A session that has received its welcome. */
  const open = async (user = 'alice', grants: string[] = []) => {
    const t = new Recorder();
    const s = gw.open({ user, grants, transport: t });
    await vi.waitUntil(() => t.frames.length > 0, { timeout: 1000, interval: 5 });
    return { s, t, frames: () => t.frames as ServerFrame[] };
  };
  const send = (s: Session, frame: object): void => handler.receive(s, Buffer.from(JSON.stringify(frame)), false);
  return { gw, hooks, open, send };
}

const reply = (id: number) => (f: ServerFrame) => f.type === 'reply' && f.id === id;
const until = (check: () => boolean) => vi.waitUntil(check, { timeout: 2000, interval: 2 });

describe('the subscribe hook', () => {
  it('asks with {user, session, channel} after the checks, and subscribes only when allowed', async () => {
    const { hooks, open, send } = await setup();
    const { s, frames } = await open();
    send(s, { type: 'subscribe', id: 1, channel: 'guarded:a' });
    await until(() => hooks.calls.length === 1);
    expect(hooks.calls[0]).toMatchObject({ hook: 'subscribe', payload: { user: 'alice', session: s.id, channel: 'guarded:a' } });
    expect(s.channels.has('guarded:a')).toBe(false);
    hooks.calls[0]!.answer({});
    await until(() => frames().some(reply(1)));
    expect(frames().find(reply(1))).toMatchObject({ result: { channel: 'guarded:a' } });
    expect(s.channels.has('guarded:a')).toBe(true);

    send(s, { type: 'subscribe', id: 2, channel: 'guarded:b' });
    await until(() => hooks.calls.length === 2);
    hooks.calls[1]!.refuse(ErrorCode.Forbidden, 'not yours');
    await until(() => frames().some(reply(2)));
    expect(frames().find(reply(2))).toMatchObject({ error: { code: 'forbidden', message: 'not yours' } });
    expect(s.channels.has('guarded:b')).toBe(false);
    expect(s.closed).toBe(false);
  });

  it('never asks for a namespace without it, for a subscribe the node refuses itself, or for the personal channel', async () => {
    const { hooks, open, send } = await setup({
      namespaces: { guarded: { historySize: 0, historyTtl: 60, presence: false, publish: true, private: true, subscribeHook: true } },
    });
    const { s, frames } = await open();
    send(s, { type: 'subscribe', id: 1, channel: 'plain' });
    send(s, { type: 'subscribe', id: 2, channel: 'guarded:secret' });
    send(s, { type: 'subscribe', id: 3, channel: 'user:bob' });
    await until(() => [1, 2, 3].every((id) => frames().some(reply(id))));
    expect(frames().find(reply(1))).toMatchObject({ result: { channel: 'plain' } });
    expect(frames().find(reply(2))).toMatchObject({ error: { code: 'forbidden' } });
    expect(frames().find(reply(3))).toMatchObject({ error: { code: 'forbidden' } });
    expect(hooks.calls).toEqual([]);
  });

  it('holds up neither a ping nor a publish on another channel while it waits', async () => {
    const { hooks, open, send } = await setup();
    const { s, frames } = await open();
    send(s, { type: 'subscribe', id: 1, channel: 'guarded:slow' });
    send(s, { type: 'ping', id: 2 });
    send(s, { type: 'subscribe', id: 3, channel: 'plain' });
    send(s, { type: 'publish', id: 4, channel: 'plain', data: 'hi' });
    await until(() => frames().some(reply(4)));
    expect(frames().some((f) => f.type === 'pong' && f.id === 2)).toBe(true);
    expect(frames().find(reply(3))).toMatchObject({ result: {} });
    expect(frames().some((f) => f.type === 'message' && f.channel === 'plain')).toBe(true);
    expect(frames().some(reply(1))).toBe(false);
    hooks.calls[0]!.answer({});
    await until(() => frames().some(reply(1)));
  });

  it('a subscribe then an unsubscribe while the hook is out ends unsubscribed, the replies in order; a later subscribe asks again', async () => {
    const { gw, hooks, open, send } = await setup();
    const { s, frames } = await open();
    send(s, { type: 'subscribe', id: 1, channel: 'guarded:x' });
    send(s, { type: 'unsubscribe', id: 2, channel: 'guarded:x' });
    send(s, { type: 'ping', id: 3 });
    await until(() => frames().some((f) => f.type === 'pong'));
    expect(frames().some(reply(2))).toBe(false);
    hooks.calls[0]!.answer({});
    await until(() => frames().some(reply(2)));
    const ids = frames().filter((f) => f.type === 'reply').map((f) => (f as { id: number }).id);
    expect(ids).toEqual([1, 2]);
    expect(s.channels.has('guarded:x')).toBe(false);
    await gw.publish('guarded:x', 'after');
    send(s, { type: 'subscribe', id: 4, channel: 'guarded:x' });
    await until(() => hooks.calls.length === 2);
    hooks.calls[1]!.answer({});
    await until(() => frames().some(reply(4)));
    expect(s.channels.has('guarded:x')).toBe(true);
    expect(frames().some((f) => f.type === 'message')).toBe(false);
  });

  it('counts the subscribes waiting on it against the limit, and a second subscribe of a waiting channel is refused', async () => {
    const { hooks, open, send } = await setup({ limits: { maxSubscriptions: 2 } });
    const { s, frames } = await open();
    send(s, { type: 'subscribe', id: 1, channel: 'guarded:a' });
    send(s, { type: 'subscribe', id: 2, channel: 'guarded:a' });
    send(s, { type: 'subscribe', id: 3, channel: 'guarded:b' });
    send(s, { type: 'subscribe', id: 4, channel: 'plain' });
    await until(() => frames().some(reply(4)) && hooks.calls.length === 2);
    expect(frames().find(reply(4))).toMatchObject({ error: { code: 'too_large' } });
    for (const call of hooks.calls) call.answer({});
    await until(() => [1, 2, 3].every((id) => frames().some(reply(id))));
    expect(frames().find(reply(2))).toMatchObject({ error: { code: 'bad_request', message: 'already subscribed to guarded:a' } });
    expect(s.subscriptionCount).toBe(2);
    expect(hooks.calls).toHaveLength(2);
  });

  it('makes no subscription for a session that closed while the hook was out', async () => {
    const { gw, hooks, open, send } = await setup();
    const { s } = await open();
    send(s, { type: 'subscribe', id: 1, channel: 'guarded:gone' });
    await until(() => hooks.calls.length === 1);
    s.disconnect(1000, 'bye', false);
    hooks.calls[0]!.answer({});
    await new Promise((r) => setTimeout(r, 20));
    expect(gw.subscriptionCount).toBe(0);
  });
});

describe('the publish hook', () => {
  it('asks with {user, session, channel, data}; publishes its data in place of the client’s, or the client’s when it has none', async () => {
    const { hooks, open, send } = await setup();
    const reader = await open('reader');
    send(reader.s, { type: 'subscribe', id: 1, channel: 'plain' });
    send(reader.s, { type: 'subscribe', id: 2, channel: 'guarded:room' });
    await until(() => hooks.calls.length === 1);
    hooks.calls[0]!.answer({});
    await until(() => reader.frames().some(reply(2)));
    const { s, frames } = await open('writer');
    send(s, { type: 'publish', id: 1, channel: 'guarded:room', data: { text: 'raw' } });
    await until(() => hooks.calls.length === 2);
    expect(hooks.calls[1]).toMatchObject({ hook: 'publish', payload: { user: 'writer', session: s.id, channel: 'guarded:room', data: { text: 'raw' } } });
    hooks.calls[1]!.answer({ data: { text: 'clean' } });
    send(s, { type: 'publish', id: 2, channel: 'guarded:room', data: 'as is' });
    await until(() => hooks.calls.length === 3);
    hooks.calls[2]!.answer({ ok: true });
    send(s, { type: 'publish', id: 3, channel: 'plain', data: 'no hook' });
    await until(() => [1, 2, 3].every((id) => frames().some(reply(id))));
    const messages = reader.frames().filter((f) => f.type === 'message').map((f) => (f as { data: unknown }).data);
    expect(messages).toEqual(expect.arrayContaining([{ text: 'clean' }, 'as is', 'no hook']));
    expect(messages).toHaveLength(3);
    expect(hooks.calls).toHaveLength(3);
  });

  it('a refusal, a failure or data over --max-frame-bytes publishes nothing', async () => {
    const { gw, hooks, open, send } = await setup({ limits: { maxFrameBytes: 1000 } });
    const { s, frames } = await open();
    send(s, { type: 'publish', id: 1, channel: 'guarded:room', data: 1 });
    send(s, { type: 'publish', id: 2, channel: 'guarded:room', data: 2 });
    send(s, { type: 'publish', id: 3, channel: 'guarded:room', data: 3 });
    await until(() => hooks.calls.length === 1);
    hooks.calls[0]!.refuse(ErrorCode.Forbidden, 'moderated');
    await until(() => hooks.calls.length === 2);
    hooks.calls[1]!.refuse(ErrorCode.Unavailable);
    await until(() => hooks.calls.length === 3);
    hooks.calls[2]!.answer({ data: 'x'.repeat(1000) });
    await until(() => [1, 2, 3].every((id) => frames().some(reply(id))));
    expect(frames().find(reply(1))).toMatchObject({ error: { code: 'forbidden', message: 'moderated' } });
    expect(frames().find(reply(2))).toMatchObject({ error: { code: 'unavailable' } });
    expect(frames().find(reply(3))).toMatchObject({ error: { code: 'too_large', message: expect.stringContaining('--max-frame-bytes') } });
    expect((await gw.history('guarded:room', { limit: 100 })).messages).toEqual([]);
  });

  it('keeps the order of one connection’s publishes on a channel whatever order the hook answers in', async () => {
    const { gw, hooks, open, send } = await setup();
    const { s, frames } = await open();
    for (let i = 0; i < 5; i++) send(s, { type: 'publish', id: i, channel: 'guarded:order', data: i });
    send(s, { type: 'publish', id: 9, channel: 'plain', data: 'other channel' });
    // Only the first is at the hook: the others wait their turn behind it; another channel does not.
    await until(() => frames().some(reply(9)));
    expect(hooks.calls).toHaveLength(1);
    for (let i = 0; i < 5; i++) {
      await until(() => hooks.calls.length === i + 1);
      hooks.calls[i]!.answer({});
    }
    await until(() => [0, 1, 2, 3, 4].every((id) => frames().some(reply(id))));
    expect((await gw.history('guarded:order', { limit: 100 })).messages.map((m) => m.data)).toEqual([0, 1, 2, 3, 4]);
  });

  it('asks for a send to user:<x> when the user namespace has it', async () => {
    const { hooks, open, send } = await setup({
      namespaces: { user: { historySize: 10, historyTtl: 60, presence: false, publish: true, private: false, publishHook: true } },
    });
    const bob = await open('bob');
    const { s, frames } = await open('alice');
    send(s, { type: 'send', id: 1, user: 'bob', data: 'psst' });
    await until(() => hooks.calls.length === 1);
    expect(hooks.calls[0]!.payload).toMatchObject({ user: 'alice', channel: 'user:bob', data: 'psst' });
    hooks.calls[0]!.answer({ data: 'checked' });
    await until(() => frames().some(reply(1)) && bob.frames().some((f) => f.type === 'message'));
    expect(bob.frames().find((f) => f.type === 'message')).toMatchObject({ channel: 'user:bob', data: 'checked', from: 'alice' });
  });
});

describe('hook metrics', () => {
  it('start at zero for the subscribe and publish hooks, so that dashboards see the series before the first call', async () => {
    const metrics = new Metrics({ node: 'n1' });
    const text = await metrics.registry.metrics();
    for (const hook of ['subscribe', 'publish']) {
      expect(text).toMatch(new RegExp(`switchboard_hook_requests_total\\{[^}]*hook="${hook}"[^}]*\\} 0`));
      expect(text).toMatch(new RegExp(`switchboard_hook_duration_seconds_count\\{[^}]*hook="${hook}"[^}]*\\} 0`));
    }
  });
});
