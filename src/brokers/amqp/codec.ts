/**
 * What one AMQP message carries. Two kinds, told apart by the message's
 * `type` property: a control message (`c`: the payload as UTF-8 text) and a
 * publication (`p`), whose body extends the Redis broker's envelope
 * (`redis/codec.ts`, the stored publication embedded, never re-encoded):
 *
 * - without history: `{"t":ts,"p":<stored>}`;
 * - with history: `{"o":offset,"e":"epoch","t":ts,"s":storedAt,"v":[prev,prevAt],"m":{…},"p":<stored>}`.
 *
 * `v` names the publication of the channel routed to the receiver before
 * this one (its offset and server store time, `[0,0]` for none); `m`, only on
 * publications routed to every receiver, overrides it for the nodes whose
 * inbox got a later one. The receiving sequencer needs nothing else to put
 * publications from several publishers back in offset order.
 */
import type { BrokerPublication } from '../broker.js';
import { isStored } from '../redis/codec.js';
import type { Predecessor } from '../redis/stream.js';

export const PUBLICATION = 'p';
export const CONTROL = 'c';

/** Where a numbered publication stands in its receiver's sequence. */
export interface Order {
  /** Offset of the publication routed to this receiver before this one (0: none). */
  prev: number;
  /** Server time (ms) at which `prev` was stored (0: none). */
  prevAt: number;
  /** Server time (ms) at which this one was stored. */
  at: number;
}

export interface Decoded {
  pub: BrokerPublication;
  /** Present when the publication is numbered. */
  order?: Order;
}

/** The body of a publication without history. */
export function plainBody(stored: string, ts: number): string {
  return `{"t":${ts},"p":${stored}}`;
}

const pair = (p: Predecessor): string => `[${p.offset},${p.at}]`;

/**
 * The body of a numbered publication. `own` is the receiver's predecessor
 * (route `nodes`: one body per target) or every receiver's (other routes),
 * `others` the nodes that differ from it.
 */
export function numberedBody(
  stored: string,
  ts: number,
  offset: number,
  epoch: string,
  at: number,
  own: Predecessor,
  others: readonly Predecessor[] = [],
): string {
  let m = '';
  if (others.length > 0) m = `,"m":{${others.map((p) => `${JSON.stringify(p.node)}:${pair(p)}`).join(',')}}`;
  return `{"o":${offset},"e":${JSON.stringify(epoch)},"t":${ts},"s":${at},"v":${pair(own)}${m},"p":${stored}}`;
}

const isPair = (v: unknown): v is [number, number] =>
  Array.isArray(v) && v.length === 2 && Number.isSafeInteger(v[0]) && Number.isSafeInteger(v[1]);

/** Decodes a publication body as seen by node `self`; `undefined` when it is not one. */
export function decodeBody(text: string, self: string): Decoded | undefined {
  let env: unknown;
  try {
    env = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof env !== 'object' || env === null) return undefined;
  const { o, e, t, s, v, m, p } = env as Record<string, unknown>;
  if (typeof t !== 'number' || !isStored(p)) return undefined;
  const pub: BrokerPublication = { ...p, ts: t };
  if (o === undefined && e === undefined) return { pub };
  if (!Number.isSafeInteger(o) || typeof e !== 'string' || !Number.isSafeInteger(s) || !isPair(v)) return undefined;
  pub.offset = o as number;
  pub.epoch = e;
  let [prev, prevAt] = v;
  if (typeof m === 'object' && m !== null && Object.hasOwn(m, self)) {
    const mine = (m as Record<string, unknown>)[self];
    if (!isPair(mine)) return undefined;
    [prev, prevAt] = mine;
  }
  return { pub, order: { prev, prevAt, at: s as number } };
}
