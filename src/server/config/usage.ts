/** The `switchboard --help` text, generated from the settings table so that it cannot drift. */
import { DEFAULT_LIMITS, withDefaults, type Limits, type NodeOptions } from '../options.js';
import { CONFIG_FLAG, envName, SETTING_KEYS, specOf, type SettingKey, type SettingSpec } from './settings.js';

const DEFAULTS: NodeOptions = withDefaults({ nodeId: 'host-pid-random' });

/** The default of a setting as shown to people: `8080`, `off`, `none`. */
export function defaultText(key: SettingKey): string {
  const value = key in DEFAULT_LIMITS ? DEFAULT_LIMITS[key as keyof Limits] : DEFAULTS[key as keyof NodeOptions];
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return 'none';
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  return String(value);
}

/** The placeholder of a flag's value, or `''` for a switch. */
export function argText(spec: SettingSpec): string {
  if (spec.arg !== undefined) return spec.arg;
  switch (spec.kind) {
    case 'boolean':
      return '';
    case 'integer':
      return '<n>';
    case 'path':
      return '<file>';
    case 'choice':
      return `<${spec.choices.join('|')}>`;
    default:
      return '<value>';
  }
}

/** The whole help text, ending with a newline. */
export function helpText(): string {
  const rows: [string, string][] = SETTING_KEYS.map((key) => {
    const spec = specOf(key);
    const flag = `--${spec.flag} ${argText(spec)}`.trimEnd();
    const choices = spec.kind === 'choice' && spec.arg !== undefined ? `: ${spec.choices.join('|')}` : '';
    return [flag, `${spec.help}${choices} [${defaultText(key)}]`];
  });
  rows.push([`--${CONFIG_FLAG} <file>`, 'JSON file with these settings in camelCase, plus namespaces']);
  rows.push(['-h, --help', 'show this text']);
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  const flagLines = rows.map(([flag, help]) => `  ${flag.padEnd(width)}${help}`);
  return [
    'Usage:',
    '  switchboard start [flags]                run one Switchboard node',
    '  switchboard cluster --nodes N [flags]    run N local nodes on consecutive ports over one',
    '                                           shared broker (development; needs --broker)',
    '  switchboard outbox-schema <table|url>    print the SQL of a PostgreSQL outbox (docs/ingest.md)',
    '  switchboard --help                       show this text',
    '  switchboard --version                    print the version',
    '',
    `Every flag is also an environment variable, e.g. --max-frame-bytes is ${envName('max-frame-bytes')}`,
    '(lists comma-separated, switches 1|true|0|false). Flags override the environment,',
    'which overrides the --config file, which overrides the defaults [shown in brackets].',
    '',
    'Flags of start (and of cluster, which passes them to every node):',
    ...flagLines,
    '',
    'Authentication is required: pass --secret, --public-key or --insecure (development only).',
    'Reference: docs/configuration.md',
    '',
  ].join('\n');
}
