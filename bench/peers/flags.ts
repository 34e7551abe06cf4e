// Flag values shared by bench/peers.ts and bench/scale.ts.
import { type Kind, KINDS } from './servers.js';

/** A whole number in [min, max], or an error that names the flag. */
export function intFlag(flag: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${flag}: expected a whole number from ${min} to ${max}, got "${v}"`);
  return n;
}

/** `--servers a,b`: server kinds, each one of `KINDS`. */
export function serversFlag(v: string): Kind[] {
  return v.split(',').map((s) => {
    if (!KINDS.includes(s as Kind)) throw new Error(`--servers: unknown "${s}" (known: ${KINDS.join(', ')})`);
    return s as Kind;
  });
}
