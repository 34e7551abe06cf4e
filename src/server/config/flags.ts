/**
 * The flags of `switchboard start`: `--name value` or `--name=value`, read
 * with node:util `parseArgs` in tokens mode so that every problem gets one
 * line of our own instead of parseArgs' multi-line message.
 */
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from './errors.js';
import { CONFIG_FLAG, emptyLayer, REMOVED_SETTINGS, SETTING_KEYS, setValue, specOf, type Layer, type SettingKey } from './settings.js';
import { didYouMean } from './suggest.js';
import { checked, fromText } from './values.js';

/** What the flags say. */
export interface ParsedFlags {
  layer: Layer;
  /** `--config`, resolved against the working directory. */
  config?: string;
}

type Token = NonNullable<ReturnType<typeof parseArgs>['tokens']>[number];
type OptionToken = Extract<Token, { kind: 'option' }>;

const BY_FLAG = new Map<string, SettingKey>(SETTING_KEYS.map((key) => [specOf(key).flag, key]));
const ALL_FLAGS = [...BY_FLAG.keys(), CONFIG_FLAG, 'help'];

const OPTIONS: NonNullable<ParseArgsConfig['options']> = {
  [CONFIG_FLAG]: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};
for (const [flag, key] of BY_FLAG) OPTIONS[flag] = { type: specOf(key).kind === 'boolean' ? 'boolean' : 'string' };

function tokensOf(argv: readonly string[]): Token[] {
  return parseArgs({ args: [...argv], options: OPTIONS, strict: false, allowPositionals: true, tokens: true }).tokens;
}

/** True when `--help` or `-h` is among the flags (checked before anything else, so help works even with bad flags). */
export function wantsHelp(argv: readonly string[]): boolean {
  return tokensOf(argv).some((token) => token.kind === 'option' && token.name === 'help');
}

/**
 * Reads the flags. A later flag overrides an earlier one; `--api-key` adds to
 * its list. Throws `ConfigError` on an unknown flag, a missing value, a stray
 * argument or a bad value. `cwd` resolves relative paths.
 */
export function parseFlags(argv: readonly string[], cwd: string): ParsedFlags {
  const layer = emptyLayer();
  const lists = new Map<SettingKey, string[]>();
  let config: string | undefined;
  for (const token of tokensOf(argv)) {
    if (token.kind === 'option-terminator') continue;
    if (token.kind === 'positional') {
      throw new ConfigError(
        `unexpected argument ${JSON.stringify(token.value)}: write flags as --name value or --name=value (see switchboard --help)`,
      );
    }
    if (token.name === 'help') continue;
    if (token.name === CONFIG_FLAG) {
      config = resolve(cwd, valueOf(token));
      continue;
    }
    const key = BY_FLAG.get(token.name);
    const removed = REMOVED_SETTINGS[token.name];
    if (key === undefined && removed !== undefined) throw new ConfigError(`${token.rawName} was removed (${removed}): leave it out`);
    if (key === undefined) {
      throw new ConfigError(`unknown flag ${token.rawName}${didYouMean(token.name, ALL_FLAGS, (f) => `--${f}`)}: see switchboard --help`);
    }
    const spec = specOf(key);
    const origin = `--${spec.flag}`;
    if (spec.kind === 'boolean') {
      if (token.value !== undefined) {
        throw new ConfigError(`${origin} takes no value, got ${origin}=${token.value}: give the flag to turn it on, leave it out to turn it off`);
      }
      setValue(layer, key, true, origin);
    } else if (spec.kind === 'list') {
      const value = valueOf(token);
      if (value === '') throw new ConfigError(`${origin} must not be empty`);
      const items = [...(lists.get(key) ?? []), checked(spec, value, origin)];
      lists.set(key, items);
      setValue(layer, key, items, origin);
    } else {
      setValue(layer, key, fromText(spec, valueOf(token), origin, cwd), origin);
    }
  }
  return config === undefined ? { layer } : { layer, config };
}

/**
 * The value of a flag that needs one. A following flag is not taken as the
 * value (`--port --insecure`); a negative number is, so that it gets a range
 * message rather than "needs a value".
 */
function valueOf(token: OptionToken): string {
  const { value, rawName } = token;
  const looksLikeFlag = value !== undefined && token.inlineValue !== true && value.startsWith('-') && !/^-\d/.test(value);
  if (value === undefined || looksLikeFlag) {
    throw new ConfigError(`${rawName} needs a value: write ${rawName} VALUE or ${rawName}=VALUE`);
  }
  return value;
}
