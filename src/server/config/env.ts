/**
 * The `SWITCHBOARD_*` environment variables: one per flag (upper case,
 * `-` → `_`). A variable set to the empty string counts as unset; lists are
 * comma-separated; switches are `1|true|0|false`.
 */
import { resolve } from 'node:path';
import { CONFIG_FLAG, emptyLayer, envName, REMOVED_SETTINGS, SETTING_KEYS, setValue, specOf, type Layer } from './settings.js';
import { didYouMean } from './suggest.js';
import { fromText } from './values.js';

/** An environment, as `process.env`. */
export type Env = Readonly<Record<string, string | undefined>>;

/** What the environment says. */
export interface ParsedEnv {
  layer: Layer;
  /** `SWITCHBOARD_CONFIG`, resolved against the working directory. */
  config?: string;
  /** One line for each `SWITCHBOARD_*` variable that is not a setting (likely a typo); it is ignored. */
  warnings: string[];
}

const PREFIX = 'SWITCHBOARD_';
const CONFIG_VAR = envName(CONFIG_FLAG);
const REMOVED_BY_ENV = new Map(Object.entries(REMOVED_SETTINGS).map(([flag, why]) => [envName(flag), why]));
const KNOWN = new Set([...SETTING_KEYS.map((key) => envName(specOf(key).flag)), CONFIG_VAR]);

/** Reads the environment. Throws `ConfigError` on a bad value. `cwd` resolves relative paths. */
export function parseEnv(env: Env, cwd: string): ParsedEnv {
  const layer = emptyLayer();
  for (const key of SETTING_KEYS) {
    const name = envName(specOf(key).flag);
    const text = env[name];
    if (text === undefined || text === '') continue;
    const value = fromText(specOf(key), text, name, cwd);
    if (Array.isArray(value) && value.length === 0) continue; // `SWITCHBOARD_API_KEY=,` says nothing
    setValue(layer, key, value, name);
  }
  const warnings = Object.keys(env)
    .filter((name) => name.startsWith(PREFIX) && !KNOWN.has(name))
    .sort()
    .map((name) => {
      const removed = REMOVED_BY_ENV.get(name);
      return removed !== undefined ? `${name} was removed and is ignored (${removed})` : `${name} is not a setting and is ignored${didYouMean(name, KNOWN)}`;
    });
  const config = env[CONFIG_VAR];
  return config === undefined || config === '' ? { layer, warnings } : { layer, config: resolve(cwd, config), warnings };
}
