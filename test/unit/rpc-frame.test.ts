/** The rpc frame: decoded alike from JSON and MessagePack, its method and data checked. */
import { encode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { decodeClientFrame } from '../../src/protocol/codec.js';
import { decodeClientFrameBinary } from '../../src/protocol/msgpack.js';

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
