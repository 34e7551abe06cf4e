/**
 * The MessagePack codec against the JSON one: every frame round-trips, and
 * every client frame, good or bad, decodes to exactly what its JSON form
 * decodes to (same frame, same error code, message and id), so the two
 * codecs share one validator. Hostile input (deep nesting, lying length
 * headers, extension types, non-string keys, truncation, random bytes) is
 * refused without a throw.
 */
import { encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeServerFrame } from '../../src/client/decode.js';
import { decodeClientFrame, type DecodeResult } from '../../src/protocol/codec.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import type { ClientFrame, ServerFrame } from '../../src/protocol/frames.js';
import {
  codecOfSubprotocol,
  decodeClientFrameBinary,
  encodeClientFrameBinary,
  encodeMessageBinary,
  encodeServerFrameBinary,
  jsonIncompatible,
  MSGPACK_SUBPROTOCOL,
  parseMsgpack,
  selectSubprotocol,
} from '../../src/protocol/msgpack.js';

/** Raw MessagePack of any value, with the library's defaults (what a third-party client would send). */
const raw = (v: unknown): Uint8Array => encode(v);
const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

function expectBadRequest(result: DecodeResult, message: RegExp, id?: number): void {
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(result.error.code).toBe(ErrorCode.BadRequest);
  expect(result.error.message).toMatch(message);
  if (id === undefined) expect('id' in result).toBe(false);
  else expect(result.id).toBe(id);
}

/** A publish frame (fixmap of 4) whose `data` is the given raw MessagePack bytes. */
const publishWithData = (id: number, data: Uint8Array): Uint8Array =>
  concat(bytes(0x84), raw('type'), raw('publish'), raw('id'), raw(id), raw('channel'), raw('chat:a'), raw('data'), data);

const nestedArrays = (depth: number): unknown => {
  let v: unknown = [];
  for (let i = 1; i < depth; i++) v = [v];
  return v;
};

const CLIENT_FRAMES: ClientFrame[] = [
  { type: 'subscribe', id: 1, channel: 'chat:a' },
  { type: 'subscribe', id: 2, channel: 'chat:a', since: { offset: 10, epoch: 'e1' } },
  { type: 'unsubscribe', id: 3, channel: 'chat:a' },
  { type: 'publish', id: 4, channel: 'chat:a', data: { text: 'hi', n: 1.5, list: [1, -2, null, true, 'x'], deep: { a: { b: {} } } } },
  { type: 'publish', id: 5, channel: 'chat:a', data: null },
  { type: 'send', id: 6, user: 'bob', data: 'hello' },
  { type: 'ack', channel: 'chat:a', offset: 7 },
  { type: 'ping', id: 8 },
  { type: 'pong' },
];

const SERVER_FRAMES: ServerFrame[] = [
  {
    type: 'welcome',
    session: 's1',
    node: 'n1',
    user: 'alice',
    channel: 'user:alice',
    offset: 3,
    epoch: 'e',
    recovered: true,
    messages: [{ channel: 'user:alice', data: { a: 1 }, offset: 3, epoch: 'e', from: 'bob' }],
    ping: 25,
  },
  { type: 'message', channel: 'chat:a', data: { text: 'hi', n: [1, 2.25, -7] }, offset: 9, epoch: 'e', from: 'bob' },
  { type: 'message', channel: 'plain', data: 'no history' },
  { type: 'reply', id: 1, result: { channel: 'chat:a', offset: 2, epoch: 'e', recovered: true, messages: [] } },
  { type: 'reply', id: 2, result: {} },
  { type: 'reply', id: 3, error: { code: ErrorCode.Forbidden, message: 'no' } },
  { type: 'error', error: { code: ErrorCode.BadRequest, message: 'frame is not valid JSON' } },
  { type: 'ping' },
  { type: 'pong', id: 4 },
  { type: 'disconnect', code: 4102, reason: 'moved', reconnect: true, url: 'ws://other:8080/ws' },
  { type: 'disconnect', code: 4100, reason: 'draining', reconnect: true },
];

describe('subprotocol', () => {
  it('names the codec by the selected subprotocol; anything else is JSON', () => {
    expect(MSGPACK_SUBPROTOCOL).toBe('switchboard.v1.msgpack');
    expect(codecOfSubprotocol(MSGPACK_SUBPROTOCOL)).toBe('msgpack');
    expect(codecOfSubprotocol('switchboard.v1')).toBe('json');
    expect(codecOfSubprotocol('')).toBe('json');
  });

  it('the server selects MessagePack only when enabled and offered, wherever it is in the list', () => {
    const offered = (...p: string[]) => new Set(p);
    expect(selectSubprotocol(offered(MSGPACK_SUBPROTOCOL, 'switchboard.v1'), true)).toBe(MSGPACK_SUBPROTOCOL);
    expect(selectSubprotocol(offered('switchboard.v1', MSGPACK_SUBPROTOCOL), true)).toBe(MSGPACK_SUBPROTOCOL);
    expect(selectSubprotocol(offered(MSGPACK_SUBPROTOCOL), true)).toBe(MSGPACK_SUBPROTOCOL);
    expect(selectSubprotocol(offered(MSGPACK_SUBPROTOCOL, 'switchboard.v1'), false)).toBe('switchboard.v1');
    expect(selectSubprotocol(offered(MSGPACK_SUBPROTOCOL), false)).toBe(false);
    expect(selectSubprotocol(offered('switchboard.v1'), true)).toBe('switchboard.v1');
    expect(selectSubprotocol(offered('other'), true)).toBe(false);
    expect(selectSubprotocol(offered(), true)).toBe(false);
  });
});

describe('round trips', () => {
  it.each(CLIENT_FRAMES.map((f) => [f.type, f] as const))('client frame %s decodes to itself and to what its JSON decodes to', (_t, frame) => {
    const binary = decodeClientFrameBinary(encodeClientFrameBinary(frame));
    expect(binary).toEqual({ ok: true, frame });
    expect(binary).toEqual(decodeClientFrame(JSON.stringify(frame)));
  });

  it.each(SERVER_FRAMES.map((f) => [f.type, f] as const))('server frame %s reaches the SDK as its JSON does', (_t, frame) => {
    const fromBinary = decodeServerFrame(encodeServerFrameBinary(frame), 'msgpack');
    expect(fromBinary).toEqual({ ok: true, frame });
    expect(fromBinary).toEqual(decodeServerFrame(JSON.stringify(frame), 'json'));
  });

  it('the SDK decodes an ArrayBuffer (browser binaryType "arraybuffer") like a Uint8Array', () => {
    const encoded = encodeServerFrameBinary(SERVER_FRAMES[1]!);
    const buffer = encoded.buffer.slice(encoded.byteOffset, encoded.byteOffset + encoded.byteLength);
    expect(decodeServerFrame(buffer, 'msgpack')).toEqual({ ok: true, frame: SERVER_FRAMES[1] });
  });

  it('encodeMessageBinary is the message frame of the publication, without absent fields', () => {
    const pub = { channel: 'chat:a', data: { x: 1 }, offset: undefined, epoch: undefined, from: undefined };
    const parsed = parseMsgpack(encodeMessageBinary(pub));
    expect(parsed).toEqual({ ok: true, value: { type: 'message', channel: 'chat:a', data: { x: 1 } } });
    // nil for an absent field would be refused by the SDK (`from` must be a string when present)
    expect(parsed.ok && Object.keys(parsed.value as object)).toEqual(['type', 'channel', 'data']);
  });

  it('a frame of the other kind is refused by the SDK', () => {
    expect(decodeServerFrame(JSON.stringify({ type: 'ping' }), 'msgpack')).toMatchObject({ ok: false, reason: /text frame/ });
    expect(decodeServerFrame(encodeServerFrameBinary({ type: 'ping' }), 'json')).toMatchObject({ ok: false, reason: 'binary frame' });
    expect(decodeServerFrame({ size: 3 }, 'msgpack')).toMatchObject({ ok: false });
  });

  it('the SDK refuses malformed binary server frames without throwing', () => {
    expect(decodeServerFrame(bytes(0xc1), 'msgpack')).toMatchObject({ ok: false, reason: /not valid MessagePack/ });
    expect(decodeServerFrame(raw({ type: 'pong' }), 'msgpack')).toMatchObject({ ok: false, reason: /malformed "pong"/ });
    expect(decodeServerFrame(raw([1]), 'msgpack')).toMatchObject({ ok: false, reason: /no string "type"/ });
  });
});

describe('the same answers as the JSON codec', () => {
  /** Frames, good and bad, taken from the JSON codec's own cases. */
  const CASES: unknown[] = [
    [{ type: 'ping', id: 1 }],
    42,
    null,
    'ping',
    true,
    {},
    { id: 3 },
    { type: 1, id: 4 },
    { type: 'hello', id: 9 },
    { type: 'hello', id: -1 },
    { type: 'hello', id: 1.5 },
    { type: 'hello', id: Number.MAX_SAFE_INTEGER + 1 },
    { type: 'x'.repeat(1000), id: 1 },
    { type: 'publish', channel: 'a', data: 1 },
    { type: 'publish', id: 1, channel: 'a' },
    { type: 'publish', id: 2, channel: 'a b', data: 1 },
    { type: 'publish', id: 2, channel: 5, data: 1 },
    { type: 'publish', id: 7, channel: 'a', data: nestedArrays(31) },
    { type: 'publish', id: 7, channel: 'a', data: nestedArrays(32) },
    { type: 'publish', id: 7, channel: 'a', data: nestedArrays(40) },
    { type: 'subscribe', id: 8, channel: 'news', since: { offset: -1, epoch: 'e' } },
    { type: 'subscribe', id: 8, channel: 'news', since: { offset: 1, epoch: 'e'.repeat(65) } },
    { type: 'subscribe', id: 8, channel: 'news', since: null },
    { type: 'subscribe', id: 8, channel: 'news', since: { offset: 1, epoch: 'e', junk: true } },
    { type: 'send', id: 6, user: 'a/b', data: 1 },
    { type: 'send', id: 6, user: 'bob' },
    { type: 'ack', channel: 'a', offset: -1 },
    { type: 'ack', offset: 1 },
    { type: 'ack', channel: 'a', offset: 2, id: 5 },
    { type: 'pong', id: 5 },
    { type: 'ping', id: 7, extra: true },
  ];

  it.each(CASES.map((c, i) => [i, c] as const))('case %i', (_i, value) => {
    expect(decodeClientFrameBinary(raw(value))).toEqual(decodeClientFrame(JSON.stringify(value)));
  });

  it('agrees with the JSON codec on arbitrary JSON frames', () => {
    const frameLike = fc.record(
      {
        type: fc.constantFrom('subscribe', 'unsubscribe', 'publish', 'send', 'ack', 'ping', 'pong', 'other'),
        id: fc.oneof(fc.nat(), fc.integer({ min: -5, max: -1 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string()),
        channel: fc.oneof(fc.constantFrom('chat:a', 'user:bob', 'a b', ''), fc.string()),
        user: fc.constantFrom('bob', 'b o b'),
        offset: fc.oneof(fc.nat(), fc.integer({ min: -3, max: -1 })),
        data: fc.jsonValue({ maxDepth: 6 }),
        since: fc.oneof(fc.record({ offset: fc.nat(), epoch: fc.string({ maxLength: 70 }) }), fc.jsonValue({ maxDepth: 2 })),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(frameLike, (value) => {
        // JSON has no -0; MessagePack keeps it, and `toEqual` tells them apart.
        const json = JSON.parse(JSON.stringify(value)) as unknown;
        // The one documented difference: MessagePack refuses a "__proto__" key (tested below), JSON keeps it.
        fc.pre(!JSON.stringify(json).includes('"__proto__"'));
        expect(decodeClientFrameBinary(raw(json))).toEqual(decodeClientFrame(JSON.stringify(json)));
      }),
      { numRuns: 500 },
    );
  });
});

describe('hostile input', () => {
  it('refuses nesting deeper than 32 levels with the same reply as JSON, even 100 000 levels, without recursion', () => {
    const depth = 100_000;
    const deep = concat(new Uint8Array(depth).fill(0x91), bytes(0x90)); // [[[…[]…]]]
    const result = decodeClientFrameBinary(publishWithData(7, deep));
    expectBadRequest(result, /frame nests deeper than 32 levels/, 7);
    const text = `{"type":"publish","id":7,"channel":"chat:a","data":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    expect(result).toEqual(decodeClientFrame(text));
  });

  it.each([
    ['str32 of 4 GiB', bytes(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61)],
    ['bin32 of 4 GiB', bytes(0xc6, 0xff, 0xff, 0xff, 0xff, 0x00)],
    ['array32 of 2^32-1 elements', bytes(0xdd, 0xff, 0xff, 0xff, 0xff, 0x01)],
    ['map32 of 2^32-1 entries', bytes(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 0x01)],
    ['array16 longer than the frame', concat(bytes(0xdc, 0x10, 0x00), new Uint8Array(100))],
    ['str8 longer than the frame', bytes(0xd9, 0x80, 0x61, 0x62)],
  ])('refuses a length header larger than the frame, before reading on: %s', (_name, header) => {
    // Refused by the decoder's limits ("Max length exceeded"), not by running out of input after allocating.
    expectBadRequest(decodeClientFrameBinary(header), /not valid MessagePack \(Max length exceeded/);
    // …inside data too: the whole frame is unreadable, so the error has no id, as for invalid JSON.
    expectBadRequest(decodeClientFrameBinary(publishWithData(3, header)), /not valid MessagePack/);
  });

  it.each([
    ['fixext 1', bytes(0xd4, 0x05, 0x00)],
    ['timestamp 32 (-1)', bytes(0xd6, 0xff, 0x00, 0x00, 0x00, 0x01)],
    ['ext 8 of length 0', bytes(0xc7, 0x00, 0x07)],
    ['ext 8 of length 3', bytes(0xc7, 0x03, 0x07, 0x01, 0x02, 0x03)],
  ])('refuses extension types: %s', (_name, ext) => {
    expectBadRequest(decodeClientFrameBinary(publishWithData(1, ext)), /not valid MessagePack/);
    expectBadRequest(decodeClientFrameBinary(ext), /not valid MessagePack/);
  });

  it('refuses map keys that are not strings, and __proto__', () => {
    const intKey = concat(bytes(0x81), raw(1), raw('x'));
    const nilKey = concat(bytes(0x81), bytes(0xc0), raw('x'));
    const arrayKey = concat(bytes(0x81), raw([1]), raw('x'));
    for (const data of [intKey, nilKey, arrayKey]) {
      expectBadRequest(decodeClientFrameBinary(publishWithData(1, data)), /not valid MessagePack/);
    }
    expectBadRequest(decodeClientFrameBinary(concat(bytes(0x82), raw(1), raw('x'), raw('type'), raw('ping'))), /map keys must be strings/);
    const proto = concat(bytes(0x81), raw('__proto__'), raw({ polluted: true }));
    expectBadRequest(decodeClientFrameBinary(publishWithData(1, proto)), /not valid MessagePack/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses data JSON cannot carry, as a reply to the id', () => {
    expectBadRequest(decodeClientFrameBinary(publishWithData(4, raw(new Uint8Array([1, 2, 3])))), /binary data/, 4);
    expectBadRequest(decodeClientFrameBinary(publishWithData(4, raw({ a: [Number.NaN] }))), /non-finite number/, 4);
    expectBadRequest(decodeClientFrameBinary(publishWithData(4, raw(Number.POSITIVE_INFINITY))), /non-finite number/, 4);
    const send = raw({ type: 'send', id: 9, user: 'bob', data: { blob: new Uint8Array(2) } });
    expectBadRequest(decodeClientFrameBinary(send), /send "data" holds binary data/, 9);
  });

  it('ignores unknown fields whatever they hold, as the JSON codec does', () => {
    expect(decodeClientFrameBinary(raw({ type: 'ping', id: 2, junk: new Uint8Array(4) }))).toEqual({ ok: true, frame: { type: 'ping', id: 2 } });
  });

  it('refuses every truncation of a valid frame, and trailing bytes', () => {
    const whole = encodeClientFrameBinary(CLIENT_FRAMES[3]!);
    for (let n = 0; n < whole.length; n++) {
      const result = decodeClientFrameBinary(whole.subarray(0, n));
      expect(result.ok, `prefix of ${n} bytes`).toBe(false);
    }
    expectBadRequest(decodeClientFrameBinary(new Uint8Array(0)), /not valid MessagePack/);
    expectBadRequest(decodeClientFrameBinary(concat(whole, bytes(0xc0))), /not valid MessagePack/);
    expect(decodeClientFrameBinary(whole).ok).toBe(true);
  });

  it('refuses non-object frames with the JSON codec\'s message', () => {
    for (const v of [[{ type: 'ping', id: 1 }], 42, null, 'ping', false]) {
      expectBadRequest(decodeClientFrameBinary(raw(v)), /frame must be a JSON object/);
    }
  });

  it('never throws on random bytes, nor on random mutations of a valid frame', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (input) => {
        const result = decodeClientFrameBinary(input);
        if (!result.ok) expect(result.error.code).toBe(ErrorCode.BadRequest);
        decodeServerFrame(input, 'msgpack');
      }),
      { numRuns: 2000 },
    );
    const valid = encodeClientFrameBinary(CLIENT_FRAMES[1]!);
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.nat(255), (at, value) => {
        const mutated = Uint8Array.from(valid);
        mutated[at] = value;
        const result = decodeClientFrameBinary(mutated);
        expect(typeof result.ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });
});

describe('jsonIncompatible', () => {
  it('finds binary and non-finite numbers at any depth; passes JSON values', () => {
    expect(jsonIncompatible({ a: [1, 'x', null, true, { b: 2.5 }] })).toBeUndefined();
    expect(jsonIncompatible({ a: [{ b: new Uint8Array(1) }] })).toBe('binary data');
    expect(jsonIncompatible([[[Number.NEGATIVE_INFINITY]]])).toBe('a non-finite number');
  });
});
