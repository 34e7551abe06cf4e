/**
 * The `defaultNamespace` and `namespaces` objects of the config file, as
 * `NamespaceOptions`. In the file a namespace reads
 * `{"history": {"size": 50, "ttl": 60}, "presence": true, "publish": false, "private": true}`
 * (and `subscribeHook`, `publishHook`, `joinLeave`, off unless true);
 * every field is optional and a missing one takes `DEFAULT_NAMESPACE`'s value
 * (`DEFAULT_PERSONAL_NAMESPACE`'s for `user`, the personal channels).
 */
import { PERSONAL_NAMESPACE } from '../../protocol/channel.js';
import { DEFAULT_NAMESPACE, DEFAULT_PERSONAL_NAMESPACE, type NamespaceOptions, type NodeOptions } from '../options.js';
import { ConfigError } from './errors.js';
import { isObject, keyOrigin, rejectUnknownKeys } from './json.js';
import { envName } from './settings.js';
import { describeJson } from './values.js';

/** Namespace names: the part of a channel name before its first `:`. */
export const NAMESPACE_NAME_RE = /^[A-Za-z0-9_\-.@=,]{1,64}$/;

/** Largest `history.size`: messages kept per channel. */
export const MAX_HISTORY_SIZE = 100_000;
/** Largest `history.ttl`: 30 days, in seconds. */
export const MAX_HISTORY_TTL = 30 * 24 * 3600;

const NAMESPACE_KEYS = ['history', 'presence', 'publish', 'private', 'subscribeHook', 'publishHook', 'joinLeave'] as const;
/** The keys that are true or false; the three last are off unless set. */
const SWITCH_KEYS = ['presence', 'publish', 'private', 'subscribeHook', 'publishHook', 'joinLeave'] as const;
const HISTORY_KEYS = ['size', 'ttl'] as const;

/** Reads the `namespaces` object: name → options. `where` names the file for messages. */
export function parseNamespaces(json: unknown, where: string): Record<string, NamespaceOptions> {
  if (!isObject(json)) {
    throw new ConfigError(`${keyOrigin('namespaces', where)} must be an object of name → options, got ${describeJson(undefined, json)}`);
  }
  const entries: [string, NamespaceOptions][] = [];
  for (const [name, options] of Object.entries(json)) {
    if (!NAMESPACE_NAME_RE.test(name)) {
      throw new ConfigError(
        `namespace name ${JSON.stringify(name)} in ${where} is invalid: ` +
          'use 1–64 characters of A-Za-z0-9_-.@=, (channels without ":" use "defaultNamespace")',
      );
    }
    const base = name === PERSONAL_NAMESPACE ? DEFAULT_PERSONAL_NAMESPACE : DEFAULT_NAMESPACE;
    entries.push([name, parseNamespace(options, `namespaces.${name}`, where, base)]);
  }
  // fromEntries defines own properties, so a namespace named "__proto__" stays a namespace.
  return Object.fromEntries(entries);
}

/** Reads one namespace object at key path `path`; missing fields come from `base`. */
export function parseNamespace(json: unknown, path: string, where: string, base: Readonly<NamespaceOptions>): NamespaceOptions {
  if (!isObject(json)) throw new ConfigError(`${keyOrigin(path, where)} must be an object, got ${describeJson(undefined, json)}`);
  rejectUnknownKeys(json, NAMESPACE_KEYS, `${path}.`, where);
  const options: NamespaceOptions = { ...base };
  if (json.history !== undefined) {
    const history = json.history;
    const historyPath = `${path}.history`;
    if (!isObject(history)) {
      const got = describeJson(undefined, history);
      throw new ConfigError(`${keyOrigin(historyPath, where)} must be an object like {"size": 100, "ttl": 300}, got ${got}`);
    }
    rejectUnknownKeys(history, HISTORY_KEYS, `${historyPath}.`, where);
    if (history.size !== undefined) options.historySize = whole(history.size, keyOrigin(`${historyPath}.size`, where), 0, MAX_HISTORY_SIZE);
    if (history.ttl !== undefined) options.historyTtl = whole(history.ttl, keyOrigin(`${historyPath}.ttl`, where), 1, MAX_HISTORY_TTL);
  }
  for (const key of SWITCH_KEYS) {
    const value = json[key];
    if (value === undefined) continue;
    if (typeof value !== 'boolean') {
      throw new ConfigError(`${keyOrigin(`${path}.${key}`, where)} must be true or false, got ${describeJson(undefined, value)}`);
    }
    options[key] = value;
  }
  return options;
}

function whole(value: unknown, origin: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${origin} must be a whole number from ${min} to ${max}, got ${describeJson(undefined, value)}`);
  }
  return value;
}

/** The namespace options that ask a hook, with the setting of the hook's URL. */
const NAMESPACE_HOOKS = [
  ['subscribeHook', 'subscribe-hook'],
  ['publishHook', 'publish-hook'],
] as const;

/**
 * What is wrong when a namespace asks a hook whose URL is not set (such a
 * node would refuse every subscribe or publish there), or undefined. `where`
 * names the config file for the message.
 */
export function unsetHookProblem(
  options: Pick<NodeOptions, 'namespaces' | 'defaultNamespace' | 'subscribeHook' | 'publishHook'>,
  where = 'the options',
): string | undefined {
  const scopes: Array<[string, Partial<NamespaceOptions>]> = [
    ['"defaultNamespace"', options.defaultNamespace],
    ...Object.entries(options.namespaces).map(([name, ns]): [string, NamespaceOptions] => [`namespace "${name}"`, ns]),
  ];
  for (const [key, flag] of NAMESPACE_HOOKS) {
    if (options[key] !== undefined) continue;
    const asking = scopes.find(([, ns]) => ns[key] === true);
    if (asking) {
      return `${asking[0]} in ${where} has ${key}: true, but no --${flag} is set: give the URL the node asks (--${flag}, ${envName(flag)} or "${key}" at the top of the config file)`;
    }
  }
  return undefined;
}
