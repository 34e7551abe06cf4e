/**
 * Checks of the answers' shapes: a node of another version, or a proxy's
 * page, becomes a clear `internal` error instead of `undefined` deep inside
 * the caller's code. Only the fields the SDK promises are checked.
 */
import { ErrorCode } from '../protocol/index.js';
import { SwitchboardApiError } from './errors.js';

export type Json = Record<string, unknown>;

function bad(what: string): SwitchboardApiError {
  return new SwitchboardApiError(ErrorCode.Internal, `unexpected answer from the server API: ${what}`, 200, 1);
}

export function object(v: unknown, what: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${what} is not an object`);
  return v as Json;
}

export function array(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw bad(`${what} is not an array`);
  return v;
}

export function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${what} is not a number`);
  return v;
}

export function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw bad(`${what} is not a string`);
  return v;
}

export function bool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw bad(`${what} is not a boolean`);
  return v;
}

/** `{offset?, epoch?}`: both or neither (channels without history answer `{}`). */
export function position(v: unknown, what: string): { offset?: number; epoch?: string } {
  const o = object(v, what);
  if (o.offset === undefined && o.epoch === undefined) return {};
  return { offset: num(o.offset, `${what}.offset`), epoch: str(o.epoch, `${what}.epoch`) };
}
