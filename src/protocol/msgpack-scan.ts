/**
 * A pre-scan of MessagePack bytes before they are decoded: one pass over
 * the headers, allocating nothing but a small stack of counts, that refuses
 * nesting deeper than the JSON limit, lengths that lie (more bytes or items
 * than the message holds), map keys that are not strings, extension types
 * and the never-used byte 0xc1. Decoding a deeply nested value builds every
 * level before the validator can count them (4–5× the CPU of the same JSON,
 * a hostile client stalling others), so the depth is refused here first, at
 * the cost of reading the headers.
 */

/** Whether the header byte starts a map. */
function isMapHead(b: number): boolean {
  return (b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf;
}

/** What the header at a value's start says: its size (a scalar's whole size, a container's header) and a container's items (-1: a scalar). One per scan, rewritten for each value, so that the scan allocates nothing per byte. */
interface Head {
  size: number;
  items: number;
}

/** Unsigned big-endian integer of `n` bytes (1, 2 or 4) at `at`; -1 past the end. */
function uint(bytes: Uint8Array, at: number, n: number): number {
  if (at + n > bytes.length) return -1;
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + (bytes[at + i] as number);
  return v;
}

function scalar(h: Head, size: number): undefined {
  h.size = size;
  h.items = -1;
  return undefined;
}

/** A string or binary: `n` length bytes after the type byte, then the data. */
function sized(h: Head, bytes: Uint8Array, at: number, n: number): string | undefined {
  const len = uint(bytes, at + 1, n);
  return len < 0 ? 'truncated header' : scalar(h, 1 + n + len);
}

/** A container of `count` entries (a map's entries are two items each) after a header of `headerSize` bytes. */
function container(h: Head, count: number, headerSize: number, map: boolean): string | undefined {
  if (count < 0) return 'truncated header';
  h.size = headerSize;
  h.items = map ? 2 * count : count;
  return undefined;
}

/** Read the header of the value at `at` (inside `bytes`) into `h`; what is wrong with it, if anything. */
function head(h: Head, bytes: Uint8Array, at: number): string | undefined {
  const b = bytes[at] as number;
  if (b <= 0x7f || b >= 0xe0) return scalar(h, 1); // fixint
  if (b <= 0x8f) return container(h, b & 0x0f, 1, true); // fixmap
  if (b <= 0x9f) return container(h, b & 0x0f, 1, false); // fixarray
  if (b <= 0xbf) return scalar(h, 1 + (b & 0x1f)); // fixstr
  switch (b) {
    case 0xc0: // nil
    case 0xc2: // false
    case 0xc3: // true
      return scalar(h, 1);
    case 0xc4: // bin 8, 16, 32 (length checked; refused later as binary where JSON is needed)
    case 0xd9: // str 8, 16, 32
      return sized(h, bytes, at, 1);
    case 0xc5:
    case 0xda:
      return sized(h, bytes, at, 2);
    case 0xc6:
    case 0xdb:
      return sized(h, bytes, at, 4);
    case 0xca: // float 32, 64
      return scalar(h, 5);
    case 0xcb:
      return scalar(h, 9);
    case 0xcc: // uint and int 8, 16, 32, 64
    case 0xd0:
      return scalar(h, 2);
    case 0xcd:
    case 0xd1:
      return scalar(h, 3);
    case 0xce:
    case 0xd2:
      return scalar(h, 5);
    case 0xcf:
    case 0xd3:
      return scalar(h, 9);
    case 0xdc: // array 16, 32
      return container(h, uint(bytes, at + 1, 2), 3, false);
    case 0xdd:
      return container(h, uint(bytes, at + 1, 4), 5, false);
    case 0xde: // map 16, 32
      return container(h, uint(bytes, at + 1, 2), 3, true);
    case 0xdf:
      return container(h, uint(bytes, at + 1, 4), 5, true);
    case 0xc1:
      return 'the never-used byte 0xc1';
    default: // 0xc7–0xc9, 0xd4–0xd8: ext and fixext
      return 'an extension type';
  }
}

/** Whether the header byte starts a string (what a map key must be). */
function isStringHead(b: number): boolean {
  return (b >= 0xa0 && b <= 0xbf) || b === 0xd9 || b === 0xda || b === 0xdb;
}

/** Whether the string value at `start` (of `size` bytes in all) is `word`, an ASCII word. */
function isWord(bytes: Uint8Array, start: number, size: number, word: string): boolean {
  const b = bytes[start] as number;
  const header = b <= 0xbf ? 1 : b === 0xd9 ? 2 : b === 0xda ? 3 : 5;
  if (size - header !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (bytes[start + header + i] !== word.charCodeAt(i)) return false;
  return true;
}

/** What the scan found. */
export interface MsgpackScan {
  /** Some array or map sits deeper than the limit: the scan stopped there. */
  tooDeep: boolean;
  /**
   * Where the scan stopped short: a lying length, a truncation, an
   * extension type, trailing bytes; `key` for a map key that is not a
   * string (a key holding a deep value would be built by the decoder before
   * it is refused).
   */
  problem?: { detail: string; key: boolean };
  /** Whether the value is a map. */
  map: boolean;
  /** Byte ranges of the top-level map's scalar `id` and `type` values read before the scan stopped (the last of each), so that a refusal can still answer the frame's id. */
  fields: { id?: [number, number]; type?: [number, number] };
}

/**
 * Scan `bytes` as one MessagePack value, stopping as soon as anything nests
 * deeper than `maxDepth` levels (the value itself is level 1, as in
 * `depthExceeds`) or a structural problem shows. Reads headers only, and
 * allocates a stack of at most `maxDepth` counts: a hostile frame costs the
 * bytes up to its fault, any other frame a pass over its headers.
 */
export function scanMsgpack(bytes: Uint8Array, maxDepth: number): MsgpackScan {
  const scan: MsgpackScan = { tooDeep: false, map: bytes.length > 0 && isMapHead(bytes[0] as number), fields: {} };
  /** Items still to read in each open container, innermost last; and whether each is a map. */
  const remaining: number[] = [];
  const isMap: boolean[] = [];
  const h: Head = { size: 0, items: -1 };
  /** The top-level field whose value comes next, if it is `id` or `type`. */
  let field: 'id' | 'type' | undefined;
  let at = 0;
  const stop = (detail: string, key = false): MsgpackScan => ({ ...scan, problem: { detail, key } });
  do {
    if (at >= bytes.length) return stop('the data ends inside a value');
    const depth = remaining.length;
    const b = bytes[at] as number;
    // In a map, items alternate key, value: an even count left means a key comes next.
    const atKey = depth > 0 && isMap[depth - 1] === true && (remaining[depth - 1] as number) % 2 === 0;
    if (atKey && !isStringHead(b)) return stop('map keys must be strings', true);
    const problem = head(h, bytes, at);
    if (problem !== undefined) return stop(problem);
    const start = at;
    at += h.size;
    if (at > bytes.length) return stop('a length beyond the end of the data');
    if (depth > 0) remaining[depth - 1] = (remaining[depth - 1] as number) - 1;
    if (depth === 1 && scan.map) {
      if (field !== undefined && h.items < 0) scan.fields[field] = [start, at];
      field = atKey && isWord(bytes, start, h.size, 'id') ? 'id' : atKey && isWord(bytes, start, h.size, 'type') ? 'type' : undefined;
    }
    if (h.items >= 0) {
      if (depth + 1 > maxDepth) return { ...scan, tooDeep: true };
      // Every item takes at least one byte: a larger count lies.
      if (h.items > bytes.length - at) return stop('more items than the data can hold');
      remaining.push(h.items);
      isMap.push(isMapHead(b));
    }
    while (remaining.length > 0 && remaining[remaining.length - 1] === 0) {
      remaining.pop();
      isMap.pop();
    }
  } while (remaining.length > 0);
  return at === bytes.length ? scan : stop('trailing bytes after the value');
}
