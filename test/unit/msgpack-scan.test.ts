/**
 * The MessagePack pre-scan: nesting deeper than the JSON limit is refused
 * from the headers alone, before the decoder builds anything (finding: deep
 * MessagePack cost 4–5× the CPU of the same JSON, and hostile frames stalled
 * other clients). Crafted input: nested arrays and maps, containers in map
 * keys, extension types, string, binary and container lengths that lie.
 */
import { decode, encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeClientFrame, depthExceeds, MAX_JSON_DEPTH } from '../../src/protocol/codec.js';
import { scanMsgpack } from '../../src/protocol/msgpack-scan.js';
import { decodeClientFrameBinary, parseMsgpack, MAX_SERVER_FRAME_DEPTH } from '../../src/protocol/msgpack.js';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const concat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);
const str = (s: string): Uint8Array => encode(s);
/** `levels` nested fixarrays of one, around an empty one: `levels + 1` levels deep. */
const arrays = (levels: number): Uint8Array => concat(new Uint8Array(levels).fill(0x91), bytes(0x90));
/** `levels` nested maps {k: …} around an empty map. */
const maps = (levels: number): Uint8Array => {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < levels; i++) parts.push(bytes(0x81), str('k'));
  return concat(...parts, bytes(0x80));
};
/** A publish frame (fixmap of 4) with raw `data` bytes. */
const publishWith = (id: number, data: Uint8Array): Uint8Array =>
  concat(bytes(0x84), str('type'), str('publish'), str('id'), encode(id), str('channel'), str('chat:a'), str('data'), data);

describe('scanMsgpack', () => {
  it('finds nesting past the limit in arrays, maps, 16- and 32-bit headers, counting as depthExceeds does', () => {
    for (const limit of [1, 2, 5, MAX_JSON_DEPTH]) {
      expect(scanMsgpack(arrays(limit - 1), limit)).toMatchObject({ tooDeep: false });
      expect(scanMsgpack(arrays(limit), limit)).toMatchObject({ tooDeep: true });
      expect(scanMsgpack(maps(limit - 1), limit)).toMatchObject({ tooDeep: false });
      expect(scanMsgpack(maps(limit), limit)).toMatchObject({ tooDeep: true });
    }
    const wide = (level: Uint8Array, n: number) => concat(...Array.from({ length: n }, () => level), bytes(0x90));
    expect(scanMsgpack(wide(bytes(0xdc, 0x00, 0x01), 3), 3).tooDeep).toBe(true); // array16
    expect(scanMsgpack(wide(bytes(0xdd, 0x00, 0x00, 0x00, 0x01), 3), 3).tooDeep).toBe(true); // array32
    expect(scanMsgpack(wide(concat(bytes(0xde, 0x00, 0x01), str('k')), 3), 3).tooDeep).toBe(true); // map16
    expect(scanMsgpack(wide(concat(bytes(0xdf, 0x00, 0x00, 0x00, 0x01), str('k')), 3), 3).tooDeep).toBe(true); // map32
    expect(scanMsgpack(scalars(), 1)).toEqual({ tooDeep: false, map: false, fields: {} });
  });

  it('agrees with depthExceeds on arbitrary JSON values, and finds no problem in them', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.integer({ min: 1, max: 8 }), (value, limit) => {
        const scan = scanMsgpack(encode(value), limit);
        expect(scan.problem).toBeUndefined();
        expect(scan.tooDeep).toBe(depthExceeds(value, limit));
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses a map key that is not a string at once, even one that would nest deep', () => {
    const deepKey = concat(bytes(0x81), arrays(100_000), str('v'));
    expect(scanMsgpack(deepKey, 32)).toEqual({ tooDeep: false, map: true, fields: {}, problem: { detail: 'map keys must be strings', key: true } });
    expect(decodeClientFrameBinary(publishWith(2, deepKey))).toMatchObject({ ok: false, error: { message: 'frame is not valid MessagePack (map keys must be strings)' } });
    expect(scanMsgpack(concat(bytes(0x81), encode(1), str('v')), 32).problem).toEqual({ detail: 'map keys must be strings', key: true });
    expect(scanMsgpack(concat(bytes(0x81), bytes(0xc0), str('v')), 32).problem?.key).toBe(true);
    // A nested map's keys too; and str8/16/32 keys are strings.
    expect(scanMsgpack(concat(bytes(0x81), str('a'), bytes(0x81), bytes(0x80), str('v')), 32).problem?.key).toBe(true);
    expect(scanMsgpack(concat(bytes(0x81), bytes(0xd9, 0x01, 0x61), encode(1)), 32).problem).toBeUndefined();
    expect(scanMsgpack(concat(bytes(0x81), bytes(0xda, 0x00, 0x01, 0x61), encode(1)), 32).problem).toBeUndefined();
  });

  it.each([
    ['fixext 1', bytes(0xd4, 0x05, 0x00), 'an extension type'],
    ['ext 8', bytes(0xc7, 0x01, 0x07, 0x00), 'an extension type'],
    ['the never-used byte', bytes(0xc1), 'the never-used byte 0xc1'],
    ['str32 of 4 GiB', bytes(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61), 'a length beyond the end of the data'],
    ['str8 longer than the data', bytes(0xd9, 0x80, 0x61, 0x62), 'a length beyond the end of the data'],
    ['fixstr longer than the data', bytes(0xa5, 0x61), 'a length beyond the end of the data'],
    ['bin32 of 4 GiB', bytes(0xc6, 0xff, 0xff, 0xff, 0xff, 0x00), 'a length beyond the end of the data'],
    ['bin16 with its length cut', bytes(0xc5, 0x01), 'truncated header'],
    ['array32 of 2^32-1 items', bytes(0xdd, 0xff, 0xff, 0xff, 0xff, 0x01), 'more items than the data can hold'],
    ['map16 of more entries than bytes', concat(bytes(0xde, 0x00, 0x09), str('k'), bytes(0x01)), 'more items than the data can hold'],
    ['a float64 cut short', bytes(0xcb, 0x00, 0x00), 'a length beyond the end of the data'],
    ['an array missing its items', bytes(0x92, 0x91, 0x01), 'the data ends inside a value'],
    ['trailing bytes', bytes(0x01, 0x02), 'trailing bytes after the value'],
    ['nothing', bytes(), 'the data ends inside a value'],
  ])('stops at %s', (_name, input, detail) => {
    expect(scanMsgpack(input, 32).problem).toEqual({ detail, key: false });
    // …inside a frame too, with nothing decoded: refused as not MessagePack.
    expect(decodeClientFrameBinary(publishWith(1, input)).ok).toBe(false);
  });

  it("notes the top-level map's scalar id and type read before it stops, and stops at the first level too deep", () => {
    const frame = concat(bytes(0x84), str('x'), encode({ id: 1 }), str('id'), encode(300), str('type'), str('publish'), str('data'), arrays(50_000));
    const scan = scanMsgpack(frame, 32);
    expect(scan).toMatchObject({ tooDeep: true, map: true });
    expect(scan.problem).toBeUndefined();
    const [a, b] = scan.fields.id!;
    expect(decode(frame.subarray(a, b))).toBe(300);
    const [c, d] = scan.fields.type!;
    expect(decode(frame.subarray(c, d))).toBe('publish');
  });
});

describe('decoding with the pre-scan', () => {
  it('answers a deep frame as the JSON codec does, to its id when it comes first (as the SDK sends it), not for ack and pong', () => {
    const deep = concat(bytes(0x84), str('type'), str('publish'), str('id'), encode(9), str('channel'), str('chat:a'), str('data'), arrays(40));
    const text = `{"type":"publish","id":9,"channel":"chat:a","data":${'['.repeat(41)}${']'.repeat(41)}}`;
    expect(decodeClientFrameBinary(deep)).toEqual(decodeClientFrame(text));
    expect(decodeClientFrameBinary(deep)).toMatchObject({ ok: false, id: 9 });
    // An id after the deep part is never read: the frame is refused where it nests too deep.
    const idLast = concat(bytes(0x84), str('type'), str('publish'), str('channel'), str('chat:a'), str('data'), arrays(40), str('id'), encode(9));
    expect(decodeClientFrameBinary(idLast)).toEqual({ ok: false, error: { code: 'bad_request', message: 'frame nests deeper than 32 levels' } });
    const ack = concat(bytes(0x83), str('type'), str('ack'), str('id'), encode(3), str('x'), arrays(40));
    expect(decodeClientFrameBinary(ack)).toEqual(decodeClientFrame(`{"type":"ack","id":3,"x":${'['.repeat(41)}${']'.repeat(41)}}`));
    expect(decodeClientFrameBinary(arrays(40))).toEqual(decodeClientFrame(`${'['.repeat(41)}${']'.repeat(41)}`));
    // Whatever follows the deep part (here a byte MessagePack never uses) is not read.
    expect(decodeClientFrameBinary(concat(publishWith(1, arrays(40)), bytes(0xc1)))).toMatchObject({ ok: false, id: 1, error: { message: 'frame nests deeper than 32 levels' } });
  });

  it('refuses a hostile deep frame many times faster than the decoder would take to build it', () => {
    // A whole 64 KiB frame (the default --max-frame-bytes) of nested arrays.
    const frame = publishWith(7, arrays(64 * 1024 - 64));
    const time = (f: () => unknown, runs: number): number => {
      const start = process.hrtime.bigint();
      for (let i = 0; i < runs; i++) f();
      return Number(process.hrtime.bigint() - start) / 1e6 / runs;
    };
    const decodeAll = () => {
      try {
        decode(frame, { maxArrayLength: frame.length, maxMapLength: frame.length });
      } catch {
        // only the time counts
      }
    };
    time(() => decodeClientFrameBinary(frame), 20); // warm up
    time(decodeAll, 20);
    const scanned = Math.min(time(() => decodeClientFrameBinary(frame), 50), time(() => decodeClientFrameBinary(frame), 50));
    const decoded = Math.min(time(decodeAll, 50), time(decodeAll, 50));
    expect(decodeClientFrameBinary(frame)).toMatchObject({ ok: false, id: 7, error: { message: 'frame nests deeper than 32 levels' } });
    // What the decoder alone costs is what the old path paid before its depth check; the scan must cost a fraction.
    expect(scanned * 3).toBeLessThan(decoded);
    // 1100 such frames (the finding's stall) take well under the 676 ms they took.
    expect(time(() => decodeClientFrameBinary(frame), 1100) * 1100).toBeLessThan(300);
  });

  it('bounds server frames on the client side too, with room for history replies', () => {
    const message = (data: Uint8Array) => concat(bytes(0x83), str('type'), str('message'), str('channel'), str('a'), str('data'), data);
    expect(parseMsgpack(message(arrays(MAX_JSON_DEPTH))).ok).toBe(true);
    expect(parseMsgpack(message(arrays(MAX_SERVER_FRAME_DEPTH)))).toEqual({ ok: false, reason: `frame nests deeper than ${MAX_SERVER_FRAME_DEPTH} levels` });
  });
});

/** Every scalar kind in one array (a level of 1). */
function scalars(): Uint8Array {
  return concat(
    bytes(0x9f - 1), // fixarray of 14
    bytes(0x05, 0xe0, 0xc0, 0xc2, 0xc3),
    bytes(0xcc, 1, 0xcd, 0, 1, 0xce, 0, 0, 0, 1, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1),
    bytes(0xd0, 1, 0xd1, 0, 1),
    bytes(0xca, 0, 0, 0, 0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0),
    bytes(0xc4, 0x01, 0xff),
  );
}
