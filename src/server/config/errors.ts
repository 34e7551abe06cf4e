/**
 * The one error the configuration loader throws, and the words used to
 * describe a file that cannot be read. The CLI prints `switchboard: ` +
 * `message` on one line and exits with code 2.
 */

/** A bad flag, environment variable or config file. `message` is one line saying what is wrong and what to do. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const READ_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many symbolic links',
};

/** Why a file could not be read, in a few words (`no such file`), from a Node fs error. */
export function describeReadError(err: unknown): string {
  const code = errorCode(err);
  if (code !== undefined && READ_ERRORS[code] !== undefined) return READ_ERRORS[code];
  const message = err instanceof Error ? err.message : String(err);
  return oneLine(message);
}

/** The `code` property of a Node system error, if any. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  const code = (err as { code: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** Collapses whitespace so a message from elsewhere fits on one line. */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
