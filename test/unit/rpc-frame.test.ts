/**
 * The rpc frame: decoded alike from JSON and MessagePack, its method and
 * data checked; and the session's bound on calls out beside its queue.
 */
import { encode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { decodeClientFrame } from '../../src/protocol/codec.js';
import { decodeClientFrameBinary } from '../../src/protocol/msgpack.js';
import { Session } from '../../src/server/core/session.js';
import { DEFAULT_LIMITS } from '../../src/server/options.js';
import { Recorder } from '../fuzz/core.js';

describe('the rpc frame', () => {
  it('decodes {type, id, method, data} from JSON and MessagePack alike', () => {
    const frame = { type: 'rpc', id: 4, method: 'orders.get/v2:x_y-z', data: { id: 7 }, extra: true };
    const expected = { ok: true, frame: { type: 'rpc', id: 4, method: 'orders.get/v2:x_y-z', data: { id: 7 } } };
    expect(decodeClientFrame(JSON.stringify(frame))).toEqual(expected);
    expect(decodeClientFrameBinary(Buffer.from(encode(frame)))).toEqual(expected);
    expect(decodeClientFrame(JSON.stringify({ type: 'rpc', id: 1, method: 'm', data: null }))).toMatchObject({ ok: true, frame: { data: null } });
  });

  it('refuses a bad method or missing data as a reply to the id', () => {
    for (const method of ['', 'a'.repeat(129), 'has space', 'é', 7, undefined]) {
      expect(decodeClientFrame(JSON.stringify({ type: 'rpc', id: 2, method, data: 1 })), String(method)).toMatchObject({
        ok: false,
        id: 2,
        error: { code: 'bad_request', message: expect.stringContaining('method') },
      });
    }
    expect(decodeClientFrame(JSON.stringify({ type: 'rpc', id: 3, method: 'a'.repeat(128), data: 1 })).ok).toBe(true);
    expect(decodeClientFrame(JSON.stringify({ type: 'rpc', id: 3, method: 'm' }))).toMatchObject({ ok: false, id: 3, error: { message: 'rpc needs "data"' } });
    expect(decodeClientFrame(JSON.stringify({ type: 'rpc', method: 'm', data: 1 }))).toMatchObject({ ok: false, error: { code: 'bad_request' } });
  });
});

describe('Session.runAside', () => {
  const session = (): Session =>
    new Session({ id: 's', user: 'u', grants: [], transport: new Recorder(), limits: DEFAULT_LIMITS, now: 0, onClosed: () => undefined });

  it('runs calls at once, shares the 1000 in flight with publishes, and accepts again once they settle', async () => {
    const s = session();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started = 0;
    const calls = Array.from({ length: 999 }, () => s.runAside(() => (started++, gate)));
    expect(started).toBe(999);
    const publish = s.publishInOrder('c', () => gate);
    expect(publish).toBeDefined();
    expect(s.runAside(() => (started++, gate))).toBeUndefined();
    expect(s.publishInOrder('d', () => gate)).toBeUndefined();
    expect(started).toBe(999);
    release();
    await Promise.all([...calls, publish]);
    await expect(s.runAside(() => Promise.resolve(7))).resolves.toBe(7);
  });

  it('frees its slot when a call fails', async () => {
    const s = session();
    const failing = Array.from({ length: 1000 }, () => s.runAside(() => Promise.reject(new Error('down'))));
    expect(s.runAside(() => Promise.resolve(1))).toBeUndefined();
    await Promise.allSettled(failing);
    await expect(s.runAside(() => Promise.resolve(1))).resolves.toBe(1);
  });
});
