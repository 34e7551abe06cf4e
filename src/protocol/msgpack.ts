/**
 * The optional binary codec: the same frames as `switchboard.v1`, encoded
 * with MessagePack and sent as binary WebSocket messages, on connections
 * that negotiated the `switchboard.v1.msgpack` subprotocol. Frames, fields,
 * limits and error replies are those of the JSON codec: a decoded client
 * frame goes through the one validator in codec.ts.
 *
 * Only what JSON can carry is accepted, so that a message published over
 * MessagePack reads the same from history, the HTTP API and JSON clients:
 * maps with string keys, arrays, strings, finite numbers, booleans and nil.
 * Binary (`bin`), extension types (timestamps included) and non-finite
 * floats are refused. Kept out of `index.ts`: the protocol entry point stays
 * free of runtime dependencies, and whoever imports this file opts in to
 * `@msgpack/msgpack`.
 */
import { Decoder, DecodeError, Encoder, type ExtensionCodecType } from '@msgpack/msgpack';
import { MAX_JSON_DEPTH, validateClientFrame, type DecodeResult } from './codec.js';
import { scanMsgpack, type MsgpackScan } from './msgpack-scan.js';
import { ErrorCode } from './errors.js';
import { SUBPROTOCOL, type ClientFrame, type ConnectFrame, type Publication, type ServerFrame } from './frames.js';

/** The subprotocol of the binary codec, offered by a client before (or instead of) `switchboard.v1`. */
export const MSGPACK_SUBPROTOCOL = 'switchboard.v1.msgpack';

/** How one connection's frames are encoded: JSON text (`switchboard.v1`) or MessagePack binary. */
export type WireCodec = 'json' | 'msgpack';

/** The codec a connection uses, from the subprotocol the server selected ('' for none: JSON). */
export function codecOfSubprotocol(protocol: string): WireCodec {
  return protocol === MSGPACK_SUBPROTOCOL ? 'msgpack' : 'json';
}

/**
 * The subprotocol a server selects from those a client offered: MessagePack
 * when it is offered and `msgpack` is enabled, wherever it stands in the
 * list; else `switchboard.v1` when offered; else none (`false`), and the
 * connection speaks JSON as for a client that offered nothing.
 */
export function selectSubprotocol(offered: ReadonlySet<string>, msgpack: boolean): string | false {
  if (msgpack && offered.has(MSGPACK_SUBPROTOCOL)) return MSGPACK_SUBPROTOCOL;
  return offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false;
}

/** Extension types are refused when decoding and never produced when encoding (a `Date` is encoded as the map of its own keys, `{}`). */
const NO_EXTENSIONS: ExtensionCodecType<undefined> = {
  tryToEncode: () => null,
  decode: (_data, type) => {
    throw new DecodeError(`extension type ${type} is not accepted`);
  },
};

/** JSON objects have string keys only; the library would also take numbers (and turn them into strings). */
function stringKey(key: unknown): string {
  if (typeof key !== 'string') throw new DecodeError(`map keys must be strings, not ${typeof key}`);
  return key;
}

/**
 * A decoder whose declared lengths may not exceed the input's size: every
 * string or binary byte, every array element and every map key takes at
 * least one byte of the input, so a larger header is hostile or truncated
 * and is refused before anything is allocated for it. Depth is bounded
 * before it runs: `scanMsgpack` refuses anything nested deeper than the
 * limit without building it (the library would build every level first).
 */
function decoderFor(byteLength: number): Decoder<undefined> {
  return new Decoder({
    maxStrLength: byteLength,
    maxBinLength: byteLength,
    maxArrayLength: byteLength,
    maxMapLength: byteLength,
    maxExtLength: 0,
    extensionCodec: NO_EXTENSIONS,
    mapKeyConverter: stringKey,
    useBigInt64: false,
  });
}

/**
 * One encoder for every frame: it reuses its buffer and `encode` returns a
 * copy, safe to share among sockets. Properties set to `undefined` are left
 * out, as `JSON.stringify` does (a publication without `offset` must not
 * arrive with `offset: nil`).
 */
const encoder = new Encoder<undefined>({ ignoreUndefined: true, extensionCodec: NO_EXTENSIONS });

export type MsgpackParseResult = { ok: true; value: unknown } | { ok: false; reason: string };

const MAX_REASON_CHARS = 100;

/**
 * Nesting accepted in frames from the server (the client's side): a
 * publication's data may nest `MAX_JSON_DEPTH` levels, and a history reply
 * holds it a few levels down.
 */
export const MAX_SERVER_FRAME_DEPTH = 2 * MAX_JSON_DEPTH;

const notMsgpack = (detail: string): string => `frame is not valid MessagePack (${detail.slice(0, MAX_REASON_CHARS)})`;

/**
 * What the pre-scan refuses before any decoding: a frame nested deeper than
 * the limit, or a map key that is not a string. Other faults are left to
 * the decoder, which stops at them in its own words.
 */
function refusedByScan(scan: MsgpackScan, maxDepth: number): string | undefined {
  if (scan.problem?.key === true) return notMsgpack(scan.problem.detail);
  return scan.tooDeep ? `frame nests deeper than ${maxDepth} levels` : undefined;
}

/** Parse one MessagePack value from a whole binary message, refusing nesting deeper than `maxDepth` before decoding. Never throws. */
export function parseMsgpack(bytes: Uint8Array | ArrayBuffer, maxDepth = MAX_SERVER_FRAME_DEPTH): MsgpackParseResult {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const refused = refusedByScan(scanMsgpack(view, maxDepth), maxDepth);
  if (refused !== undefined) return { ok: false, reason: refused };
  return decodeScanned(view);
}

/** Decode bytes the pre-scan let through. */
function decodeScanned(view: Uint8Array): MsgpackParseResult {
  try {
    return { ok: true, value: decoderFor(view.byteLength).decode(view) };
  } catch (err) {
    // DecodeError for bad input, RangeError for truncated input ("Insufficient data").
    return { ok: false, reason: notMsgpack(err instanceof Error ? err.message : 'undecodable') };
  }
}

/**
 * What in `value` JSON could not carry (binary, a non-finite number), or
 * undefined when it is a JSON value. Iterative; the caller has already
 * bounded its depth.
 */
export function jsonIncompatible(value: unknown): string | undefined {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return 'a non-finite number';
    } else if (v instanceof Uint8Array) {
      return 'binary data';
    } else if (Array.isArray(v)) {
      for (const item of v) stack.push(item);
    } else if (typeof v === 'object' && v !== null) {
      for (const item of Object.values(v)) stack.push(item);
    }
  }
  return undefined;
}

/**
 * Decode one binary frame from a client: the same validation and the same
 * error replies as `decodeClientFrame`, plus a refusal of `data` that JSON
 * could not carry (a reply to the frame's id). Never throws.
 */
export function decodeClientFrameBinary(bytes: Uint8Array | ArrayBuffer): DecodeResult {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const scan = scanMsgpack(view, MAX_JSON_DEPTH);
  const refused = refusedByScan(scan, MAX_JSON_DEPTH);
  if (refused !== undefined) return refuseScanned(view, scan, refused);
  const parsed = decodeScanned(view);
  if (!parsed.ok) return { ok: false, error: { code: ErrorCode.BadRequest, message: parsed.reason } };
  const result = validateClientFrame(parsed.value);
  if (!result.ok) return result;
  const frame = result.frame;
  if (frame.type === 'publish' || frame.type === 'send') {
    const problem = jsonIncompatible(frame.data);
    if (problem !== undefined) {
      const message = `${frame.type} "data" holds ${problem}: only values JSON can carry are accepted`;
      return { ok: false, error: { code: ErrorCode.BadRequest, message }, id: frame.id };
    }
  }
  return result;
}

/**
 * The reply to a frame the pre-scan refused, as the JSON codec would give
 * it: "must be an object" for a deep non-map, else a reply to the frame's
 * id when it stands before the deep part (read from the few bytes of its
 * top-level `id` and `type`; the SDK sends them first). The rest of the
 * frame is never read.
 */
function refuseScanned(view: Uint8Array, scan: MsgpackScan, message: string): DecodeResult {
  const fail = (m: string, id?: number): DecodeResult => ({ ok: false, error: { code: ErrorCode.BadRequest, message: m }, ...(id === undefined ? {} : { id }) });
  if (scan.problem) return fail(message);
  if (!scan.map) return fail('frame must be a JSON object');
  const field = (range: [number, number] | undefined): unknown => {
    const parsed = range ? decodeScanned(view.subarray(range[0], range[1])) : undefined;
    return parsed?.ok === true ? parsed.value : undefined;
  };
  const id = field(scan.fields.id);
  const type = field(scan.fields.type);
  const usable = typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 && type !== 'ack' && type !== 'pong';
  return fail(message, usable ? id : undefined);
}

/** A server frame as MessagePack, for a connection on the binary codec. */
export function encodeServerFrameBinary(frame: ServerFrame): Uint8Array {
  return encoder.encode(frame);
}

/** The `message` frame of a publication as MessagePack: fan-out encodes it once for all binary subscribers. */
export function encodeMessageBinary(pub: Publication): Uint8Array {
  return encoder.encode({ type: 'message', ...pub });
}

/** A client frame as MessagePack (the SDK's side). Throws for what cannot be encoded (a cycle, over 100 levels, a function). */
export function encodeClientFrameBinary(frame: ClientFrame | ConnectFrame): Uint8Array {
  return encoder.encode(frame);
}
