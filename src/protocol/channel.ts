/**
 * Channel names (SPEC "Words"): 1–255 characters of `A-Za-z0-9_-.:@=,`.
 * The part before the first `:` is the namespace; `user:<id>` is the
 * personal channel of user `<id>`.
 */

export const MAX_CHANNEL_LENGTH = 255;
export const PERSONAL_NAMESPACE = 'user';

const CHANNEL_RE = /^[A-Za-z0-9_\-.:@=,]{1,255}$/;
/** User ids follow the same alphabet, minus nothing: a personal channel must stay a valid channel name. */
const USER_RE = /^[A-Za-z0-9_\-.:@=,]{1,250}$/;

export function isValidChannel(name: unknown): name is string {
  return typeof name === 'string' && CHANNEL_RE.test(name);
}

export function isValidUserId(id: unknown): id is string {
  return typeof id === 'string' && USER_RE.test(id);
}

/** The namespace of a channel: the part before the first `:`, or `''` (the default namespace). */
export function namespaceOf(channel: string): string {
  const i = channel.indexOf(':');
  return i < 0 ? '' : channel.slice(0, i);
}

export function personalChannel(user: string): string {
  return `${PERSONAL_NAMESPACE}:${user}`;
}

/** The user id of a personal channel, or undefined when the channel is not one. */
export function personalChannelUser(channel: string): string | undefined {
  return channel.startsWith(`${PERSONAL_NAMESPACE}:`) ? channel.slice(PERSONAL_NAMESPACE.length + 1) : undefined;
}

/**
 * Whether `channel` matches a pattern of the token's `channels` claim, where
 * `*` stands for any run of characters (possibly empty) and everything else
 * is literal.
 */
export function matchesPattern(pattern: string, channel: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === channel;
  const first = parts[0] ?? '';
  const last = parts[parts.length - 1] ?? '';
  if (!channel.startsWith(first) || channel.length < first.length + last.length) return false;
  let pos = first.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const part = parts[i] ?? '';
    const at = channel.indexOf(part, pos);
    if (at < 0) return false;
    pos = at + part.length;
  }
  return channel.length - last.length >= pos && channel.endsWith(last);
}
