/**
 * Typed setting values from raw input: text (flags, environment) or JSON
 * (config file). Every problem is a `ConfigError` whose message starts with
 * the value's origin (`--port`, `SWITCHBOARD_PORT`, `"port" in config file …`).
 */
import { resolve } from 'node:path';
import { ConfigError } from './errors.js';
import type { ChoiceSetting, IntegerSetting, SettingSpec, SettingValue } from './settings.js';

const TRUE_WORDS = ['1', 'true'];
const FALSE_WORDS = ['0', 'false'];

/** A value given as text (a flag or an environment variable); lists are comma-separated. `baseDir` resolves relative paths. */
export function fromText(spec: SettingSpec, text: string, origin: string, baseDir: string): SettingValue {
  switch (spec.kind) {
    case 'integer':
      return integer(spec, /^\s*-?\d+\s*$/.test(text) ? Number(text) : Number.NaN, origin, shown(spec, text));
    case 'boolean':
      return booleanFromText(text, origin);
    case 'list':
      return text
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '')
        .map((item) => checked(spec, item, origin));
    case 'choice':
      return choice(spec, text.trim(), origin, shown(spec, text));
    case 'path':
      return resolve(baseDir, nonEmpty(text, origin));
    case 'string':
      return checked(spec, nonEmpty(text, origin), origin);
  }
}

/** A value read from the config file. `baseDir` (the file's folder) resolves relative paths. */
export function fromJson(spec: SettingSpec, json: unknown, origin: string, baseDir: string): SettingValue {
  switch (spec.kind) {
    case 'integer':
      if (typeof json !== 'number') throw new ConfigError(`${origin} must be ${range(spec)}, got ${describeJson(spec, json)}`);
      return integer(spec, json, origin, describeJson(spec, json));
    case 'boolean':
      if (typeof json !== 'boolean') throw new ConfigError(`${origin} must be true or false, got ${describeJson(spec, json)}`);
      return json;
    case 'list':
      return list(json, origin, describeJson(spec, json)).map((item) => checked(spec, item, origin));
    case 'choice':
      if (typeof json !== 'string') throw new ConfigError(`${origin} must be one of ${spec.choices.join(', ')}, got ${describeJson(spec, json)}`);
      return choice(spec, json, origin, describeJson(spec, json));
    case 'path':
      if (typeof json !== 'string') throw new ConfigError(`${origin} must be a file path (a string), got ${describeJson(spec, json)}`);
      return resolve(baseDir, nonEmpty(json, origin));
    case 'string':
      if (typeof json !== 'string') throw new ConfigError(`${origin} must be a string, got ${describeJson(spec, json)}`);
      return checked(spec, nonEmpty(json, origin), origin);
  }
}

/** `1|true` → true, `0|false` → false (any case, surrounding spaces ignored). */
export function booleanFromText(text: string, origin: string): boolean {
  const word = text.trim().toLowerCase();
  if (TRUE_WORDS.includes(word)) return true;
  if (FALSE_WORDS.includes(word)) return false;
  throw new ConfigError(`${origin} must be 1, true, 0 or false, got ${JSON.stringify(clip(text))}`);
}

/** A value as it may appear in a message: quoted, clipped, with secrets hidden. */
export function shown(spec: SettingSpec, text: string): string {
  if (spec.sensitive === true) return '(hidden)';
  return JSON.stringify(clip(spec.show === undefined ? text : spec.show(text)));
}

/** A JSON value as it may appear in a message: `80`, `"80" (a string)`, `an array`. */
export function describeJson(spec: SettingSpec | undefined, json: unknown): string {
  if (typeof json === 'string') {
    if (spec?.sensitive === true) return 'a string';
    return `${spec === undefined ? JSON.stringify(clip(json)) : shown(spec, json)} (a string)`;
  }
  if (typeof json === 'number' || typeof json === 'boolean' || json === null) return String(json);
  if (Array.isArray(json)) return 'an array';
  return typeof json === 'object' ? 'an object' : `a ${typeof json}`;
}

function list(json: unknown, origin: string, display: string): string[] {
  const items: readonly unknown[] = Array.isArray(json) ? json : [];
  const strings = items.filter((item): item is string => typeof item === 'string' && item !== '');
  if (!Array.isArray(json) || strings.length !== items.length) {
    throw new ConfigError(`${origin} must be an array of non-empty strings, got ${display}`);
  }
  return strings;
}

function integer(spec: IntegerSetting, value: number, origin: string, display: string): number {
  if (!Number.isSafeInteger(value) || value < spec.min || value > spec.max) {
    throw new ConfigError(`${origin} must be ${range(spec)}, got ${display}`);
  }
  return value;
}

function range(spec: IntegerSetting): string {
  return spec.max === Number.MAX_SAFE_INTEGER
    ? `a whole number of at least ${spec.min}`
    : `a whole number from ${spec.min} to ${spec.max}`;
}

function choice(spec: ChoiceSetting, value: string, origin: string, display: string): string {
  if (!spec.choices.includes(value)) throw new ConfigError(`${origin} must be one of ${spec.choices.join(', ')}, got ${display}`);
  return value;
}

/** `value` when the spec's `check` finds nothing wrong with it (each item of a list is checked alone). */
export function checked(spec: SettingSpec & { kind: 'string' | 'list' }, value: string, origin: string): string {
  const problem = spec.check?.(value);
  if (problem !== undefined) throw new ConfigError(`${origin}: ${shown(spec, value)} ${problem}`);
  return value;
}

function nonEmpty(text: string, origin: string): string {
  if (text === '') throw new ConfigError(`${origin} must not be empty`);
  return text;
}

function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
