// The traffic: the seeded plan of publications (sends to a user, publishes to
// a room), who each one reaches, and the payload that carries its send time.
import { prng } from '../lib/random.js';
import { type Args, ROOM_SIZE, SEND_SHARE } from './settings.js';

export type Target = { kind: 'send'; user: number; pick: number } | { kind: 'room'; room: number; pick: number };

export const userName = (i: number): string => `u${i}`;
export const roomName = (k: number): string => `room.${k}`;
export const roomOf = (user: number): number => Math.floor(user / ROOM_SIZE);
export const nodeId = (i: number): string => `n${i}`;

/** Warm-up and measured publications; publication n is `plan[n]`, its API node `floor(pick × N)`. */
export function makePlan(args: Args): Target[] {
  const rnd = prng(42);
  const rooms = Math.ceil(args.users / ROOM_SIZE);
  return Array.from({ length: args.warmup + args.messages }, (): Target => {
    const pick = rnd();
    return rnd() < SEND_SHARE
      ? { kind: 'send', user: Math.floor(rnd() * args.users), pick }
      : { kind: 'room', room: Math.floor(rnd() * rooms), pick };
  });
}

/** The users a target reaches (one connection each). */
export function recipients(t: Target, users: number): number[] {
  if (t.kind === 'send') return [t.user];
  const out: number[] = [];
  for (let u = t.room * ROOM_SIZE; u < Math.min(users, (t.room + 1) * ROOM_SIZE); u++) out.push(u);
  return out;
}

export interface Payload {
  n: number;
  /** `performance.now()` in this process just before the request. */
  t: number;
  text: string;
}
