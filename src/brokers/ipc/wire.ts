/**
 * What travels between a worker's `IpcBroker` and the primary's `IpcHub`:
 * calls of the `Transport` methods, and store and registry calls as one
 * generic `store` call (method name and arguments), one way; their answers
 * and the handler events the other way. A new store method needs nothing
 * here. Keys are one letter because every publication a worker receives
 * crosses the channel once and is serialized each time.
 *
 * Messages go in batches (`{ sbipc: [...] }`): one serialization and one
 * write per event-loop turn instead of one per message, and the envelope
 * key keeps them apart from anything else on the same IPC channel.
 */
import type { BrokerPublication, Registry, Store, Transport } from '../broker.js';
import { REGISTRY_METHODS, STORE_METHODS } from '../broker.js';

/**
 * What a worker calls through the hub: the `Transport` methods (`start`
 * and `close` included), and `store` for any `Store` or `Registry` method
 * (its arguments are a `StoreCall`). Not `readSubscribing`, whose read is a
 * function: a worker reads once its subscription is confirmed.
 */
export type Op = Exclude<keyof Transport, 'kind' | 'routes' | 'ready' | 'readSubscribing'> | 'store';

export const OPS: ReadonlySet<string> = new Set<Op>(['start', 'close', 'subscribe', 'unsubscribe', 'publish', 'sendControl', 'store']);

/** The store and registry methods, as one interface. */
export type StoreMethods = Store & Registry;
export type StoreMethod = keyof StoreMethods;

/** The arguments of a `store` call: a store or registry method's name and its arguments, typed per method. */
export type StoreCall = { [M in StoreMethod]: [method: M, args: Parameters<StoreMethods[M]>] }[StoreMethod];

const STORE_METHOD_NAMES: ReadonlySet<string> = new Set<StoreMethod>([...STORE_METHODS, ...REGISTRY_METHODS]);

/** Whether `name` is a store or registry method (the hub calls nothing else). */
export function isStoreMethod(name: unknown): name is StoreMethod {
  return typeof name === 'string' && STORE_METHOD_NAMES.has(name);
}

/** Whether `method` belongs to the registry rather than the store. */
export function isRegistryMethod(method: StoreMethod): method is keyof Registry {
  return (REGISTRY_METHODS as ReadonlyArray<string>).includes(method);
}

/** Worker → hub: call `o` with arguments `a`; `i` pairs the answer with the call. */
export interface CallMessage {
  t: 'q';
  i: number;
  o: Op;
  a: unknown[];
}

/** Hub → worker: the call `i` resolved with `r` (absent for `void`). */
export interface ResultMessage {
  t: 'r';
  i: number;
  r?: unknown;
}

/** Hub → worker: the call `i` failed with the message `e`. */
export interface ErrorMessage {
  t: 'x';
  i: number;
  e: string;
}

/** Hub → worker: `onPublication`. */
export interface PublicationMessage {
  t: 'p';
  p: BrokerPublication;
}

/** Hub → worker: `onControl`. */
export interface ControlMessage {
  t: 'c';
  c: string;
}

export type ToHub = CallMessage;
export type ToWorker = ResultMessage | ErrorMessage | PublicationMessage | ControlMessage;
export type WireMessage = ToHub | ToWorker;

/** One batch as it is sent over the channel. */
export interface Envelope {
  sbipc: WireMessage[];
}

/** The messages of an envelope, or null for anything else that arrives on the channel. */
export function openEnvelope(raw: unknown): unknown[] | null {
  if (typeof raw !== 'object' || raw === null || !('sbipc' in raw)) return null;
  const batch = raw.sbipc;
  return Array.isArray(batch) ? (batch as unknown[]) : null;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** A well-formed call, or null (the hub reports it and answers nothing it cannot pair). */
export function asCall(m: unknown): CallMessage | null {
  if (!isRecord(m) || m.t !== 'q' || typeof m.i !== 'number' || typeof m.o !== 'string' || !OPS.has(m.o) || !Array.isArray(m.a)) {
    return null;
  }
  return m as unknown as CallMessage;
}

/** A well-formed message to a worker, or null. */
export function asToWorker(m: unknown): ToWorker | null {
  if (!isRecord(m)) return null;
  switch (m.t) {
    case 'r':
      return typeof m.i === 'number' ? (m as unknown as ResultMessage) : null;
    case 'x':
      return typeof m.i === 'number' && typeof m.e === 'string' ? (m as unknown as ErrorMessage) : null;
    case 'p':
      return isRecord(m.p) && typeof m.p.channel === 'string' ? (m as unknown as PublicationMessage) : null;
    case 'c':
      return typeof m.c === 'string' ? (m as unknown as ControlMessage) : null;
    default:
      return null;
  }
}
