/**
 * The `--config` JSON file: the same settings as the flags, in camelCase
 * (limits inside `limits`), plus `defaultNamespace` and `namespaces`. Unknown
 * keys are errors, so a misspelt key cannot silently leave a default in place.
 */
import { dirname } from 'node:path';
import { DEFAULT_NAMESPACE, type NamespaceOptions } from '../options.js';
import { ConfigError, oneLine } from './errors.js';
import { isObject, keyOrigin, rejectUnknownKeys, type JsonObject } from './json.js';
import { parseNamespace, parseNamespaces } from './namespaces.js';
import { emptyLayer, fileKey, REMOVED_SETTINGS, removedFileKey, SETTING_KEYS, setValue, specOf, type Layer, type SettingKey } from './settings.js';
import { describeJson, fromJson } from './values.js';

/** What the config file says. */
export interface ParsedFile {
  layer: Layer;
  defaultNamespace?: NamespaceOptions;
  namespaces?: Record<string, NamespaceOptions>;
}

const TOP_SETTINGS = SETTING_KEYS.filter((key) => specOf(key).section === undefined);
const LIMIT_SETTINGS = SETTING_KEYS.filter((key) => specOf(key).section === 'limits');
const TOP_KEYS: readonly string[] = [...TOP_SETTINGS, 'limits', 'defaultNamespace', 'namespaces'];

/** Reads the text of the config file at `path` (absolute); relative paths inside it are relative to its folder. */
export function parseConfigFile(text: string, path: string): ParsedFile {
  const where = `config file ${path}`;
  const json = parseJson(text, where);
  if (!isObject(json)) throw new ConfigError(`${where} must hold a JSON object ({…}), got ${describeJson(undefined, json)}`);
  for (const [flag, why] of Object.entries(REMOVED_SETTINGS)) {
    const key = removedFileKey(flag);
    if (key in json) throw new ConfigError(`${keyOrigin(key, where)} was removed (${why}): leave it out`);
  }
  rejectUnknownKeys(json, TOP_KEYS, '', where);
  const layer = emptyLayer();
  readSettings(json, TOP_SETTINGS, layer, where, dirname(path));
  if (json.limits !== undefined) {
    if (!isObject(json.limits)) throw new ConfigError(`${keyOrigin('limits', where)} must be an object, got ${describeJson(undefined, json.limits)}`);
    rejectUnknownKeys(json.limits, LIMIT_SETTINGS, 'limits.', where);
    readSettings(json.limits, LIMIT_SETTINGS, layer, where, dirname(path));
  }
  const parsed: ParsedFile = { layer };
  if (json.defaultNamespace !== undefined) {
    parsed.defaultNamespace = parseNamespace(json.defaultNamespace, 'defaultNamespace', where, DEFAULT_NAMESPACE);
  }
  if (json.namespaces !== undefined) parsed.namespaces = parseNamespaces(json.namespaces, where);
  return parsed;
}

function readSettings(object: JsonObject, keys: readonly SettingKey[], layer: Layer, where: string, baseDir: string): void {
  for (const key of keys) {
    if (object[key] === undefined) continue;
    const origin = keyOrigin(fileKey(key), where);
    setValue(layer, key, fromJson(specOf(key), object[key], origin, baseDir), origin);
  }
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text.replace(/^\uFEFF/, '')) as unknown;
  } catch (err) {
    throw new ConfigError(`${where} is not valid JSON (${jsonProblem(err, text)}): fix it or point --config elsewhere`);
  }
}

/** V8's JSON error, on one line, with the position as line and column when V8 gives one. */
function jsonProblem(err: unknown, text: string): string {
  const message = err instanceof Error ? err.message : String(err);
  const positioned = /^(.*?)\s+(?:in JSON\s+)?at position (\d+)/s.exec(message);
  if (positioned !== null) {
    const before = text.slice(0, Number(positioned[2]));
    const line = before.split('\n').length;
    const column = before.length - before.lastIndexOf('\n');
    return `${oneLine(positioned[1] ?? '')} at line ${line}, column ${column}`;
  }
  // Newer V8 quotes the whole input instead: keep only the first clause.
  const quoted = /^(.*?), (?:\.\.\.)?".*" is not valid JSON$/s.exec(message);
  return oneLine(quoted?.[1] ?? message);
}
