/** Small helpers for reading untrusted JSON objects with messages that name the key. */
import { ConfigError } from './errors.js';
import { didYouMean } from './suggest.js';

/** A JSON object (not null, not an array). */
export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Throws a `ConfigError` naming the first key of `object` not in `allowed` (catches typos). `where` is e.g. `config file x.json`. */
export function rejectUnknownKeys(object: JsonObject, allowed: readonly string[], prefix: string, where: string): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) {
      const hint = didYouMean(key, allowed, (k) => `"${prefix}${k}"`);
      throw new ConfigError(`unknown key "${prefix}${key}" in ${where}${hint}: remove it or fix its name (see docs/configuration.md)`);
    }
  }
}

/** The key path `"limits.maxFrameBytes" in config file x.json`, used as a value's origin. */
export function keyOrigin(path: string, where: string): string {
  return `"${path}" in ${where}`;
}
