/**
 * Credentials of a chaos cluster: the HS256 secret its nodes verify tokens
 * with, the server API key, and tokens for users, made with `jose` as a
 * real application backend would.
 */
import { SignJWT } from 'jose';

/** 32+ characters, so the node does not warn about a short secret. */
export const SECRET = 'chaos-suite-hs256-secret-0123456789abcdef';
export const API_KEY = 'chaos-api-key';

const key = new TextEncoder().encode(SECRET);

/** A token for `user`, valid for an hour (longer than any scenario). */
export function tokenFor(user: string): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setIssuedAt().setExpirationTime('1h').sign(key);
}
