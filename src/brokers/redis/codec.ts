/**
 * What travels through Redis pub/sub and sits in history.
 *
 * - The stored publication (`StoredJson`): `{"channel","data","from"?}` as
 *   JSON, written once by the publisher and kept as is in the history stream.
 * - The envelope, one pub/sub message: `{"o":offset,"e":"epoch","t":ts,"p":<stored>}`
 *   with history, `{"t":ts,"p":<stored>}` without. With history, and for
 *   every publication routed to all nodes or to inboxes, a publish script
 *   builds it (it alone knows the offset), by the same rule as
 *   `encodeEnvelope` here: the stored JSON is embedded, never re-encoded.
 */
import type { Publication } from '../../protocol/index.js';
import type { BrokerPublication } from '../broker.js';

export type PublishInput = Omit<BrokerPublication, 'offset' | 'epoch'>;

/** The publication as stored in history: no offset, epoch or accept time. */
export function encodeStored(pub: PublishInput): string {
  return JSON.stringify(pub.from === undefined ? { channel: pub.channel, data: pub.data } : { channel: pub.channel, data: pub.data, from: pub.from });
}

/** The envelope of a publication without history. */
export function encodeEnvelope(stored: string, ts: number): string {
  return `{"t":${ts},"p":${stored}}`;
}

/** Whether a parsed value is a stored publication (`{channel, data?, from?}`). */
export function isStored(v: unknown): v is Publication {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  // `data` may be absent: JSON drops an undefined value, which is still a publication.
  return typeof p.channel === 'string' && (p.from === undefined || typeof p.from === 'string');
}

/** Decodes an envelope; `undefined` when it is not one (counted as an error by the caller). */
export function decodeEnvelope(text: string): BrokerPublication | undefined {
  let env: unknown;
  try {
    env = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof env !== 'object' || env === null) return undefined;
  const { o, e, t, p } = env as Record<string, unknown>;
  if (typeof t !== 'number' || !isStored(p)) return undefined;
  const pub: BrokerPublication = { ...p, ts: t };
  if (o !== undefined || e !== undefined) {
    if (!Number.isSafeInteger(o) || typeof e !== 'string') return undefined;
    pub.offset = o as number;
    pub.epoch = e;
  }
  return pub;
}

/** A history entry back into a publication; `undefined` when the stored JSON is damaged. */
export function decodeStored(text: string, offset: number, epoch: string): Publication | undefined {
  let p: unknown;
  try {
    p = JSON.parse(text);
  } catch {
    return undefined;
  }
  return isStored(p) ? { ...p, offset, epoch } : undefined;
}
