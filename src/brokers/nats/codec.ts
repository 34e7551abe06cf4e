/**
 * What a NATS message of the broker carries. The body is the stored
 * publication, `{"channel","data","from"?}` as JSON (the same text the
 * Redis broker keeps in history), written once by the publisher and kept
 * as is in the history stream. The rest travels in headers, so the server
 * can republish a stored message unchanged:
 *
 * - `Sb-Ts`: the publisher's accept time (ms);
 * - `Sb-Offset`, `Sb-Epoch`: the numbering, on publications with history;
 *   offset `0` marks an epoch marker (an empty body: see `history.ts`),
 *   which is never delivered;
 * - `Sb-Route: all` on publications routed to every node (all mode).
 */
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import type { Publication } from '../../protocol/index.js';
import type { BrokerPublication } from '../broker.js';

export type PublishInput = Omit<BrokerPublication, 'offset' | 'epoch'>;

export const H_TS = 'Sb-Ts';
export const H_OFFSET = 'Sb-Offset';
export const H_EPOCH = 'Sb-Epoch';
export const H_ROUTE = 'Sb-Route';
/** Set by the server on republished messages: the stream and the message's sequence in it. */
export const H_STREAM = 'Nats-Stream';
export const H_SEQUENCE = 'Nats-Sequence';

/** The publication as stored: no offset, epoch or accept time. */
export function encodeStored(pub: PublishInput): string {
  return JSON.stringify(pub.from === undefined ? { channel: pub.channel, data: pub.data } : { channel: pub.channel, data: pub.data, from: pub.from });
}

export interface Numbering {
  offset: number;
  epoch: string;
}

/** The headers of a publication: its accept time, numbering when it has history, and its route when it goes to all nodes. */
export function publicationHeaders(ts: number, numbering: Numbering | null, toAll: boolean): MsgHdrs {
  const h = natsHeaders();
  h.set(H_TS, String(ts));
  if (numbering) {
    h.set(H_OFFSET, String(numbering.offset));
    h.set(H_EPOCH, numbering.epoch);
  }
  if (toAll) h.set(H_ROUTE, 'all');
  return h;
}

/** The numbering a stored message carries; `undefined` when it has none or it is damaged. */
export function numberingOf(h: MsgHdrs | undefined): Numbering | undefined {
  const offset = Number(h?.get(H_OFFSET) || NaN);
  const epoch = h?.get(H_EPOCH) ?? '';
  if (!Number.isSafeInteger(offset) || offset < 0 || epoch === '') return undefined;
  return { offset, epoch };
}

function isStored(v: unknown): v is Publication {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  // `data` may be absent: JSON drops an undefined value, which is still a publication.
  return typeof p.channel === 'string' && (p.from === undefined || typeof p.from === 'string');
}

/** The stored publication in a body; `undefined` when it is damaged. */
export function decodeStored(body: string): Publication | undefined {
  let p: unknown;
  try {
    p = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!isStored(p)) return undefined;
  return p.from === undefined ? { channel: p.channel, data: p.data } : { channel: p.channel, data: p.data, from: p.from };
}

/** Whether a message is an epoch marker (never delivered). */
export function isMarker(h: MsgHdrs | undefined): boolean {
  return h?.get(H_OFFSET) === '0';
}

/** A delivered message back into a publication; `undefined` when it is damaged (a marker is not a publication either). */
export function decodeDelivered(body: string, h: MsgHdrs | undefined): BrokerPublication | undefined {
  const ts = Number(h?.get(H_TS) || NaN);
  if (!Number.isFinite(ts)) return undefined;
  const stored = decodeStored(body);
  if (!stored) return undefined;
  const pub: BrokerPublication = { ...stored, ts };
  if (h?.has(H_OFFSET)) {
    const numbering = numberingOf(h);
    if (!numbering || numbering.offset === 0) return undefined;
    pub.offset = numbering.offset;
    pub.epoch = numbering.epoch;
  }
  return pub;
}
