/**
 * How the Redis broker splits a call's items into commands: grouped by the
 * key (or slot) they go to, and in chunks that bound the size of one command.
 */

/** Items per command at most (fields of one HSET, members of one SADD). */
export const CHUNK = 500;

/** `items` grouped by `keyOf`, in first-seen order. */
export function groupBy<T, K>(items: Iterable<T>, keyOf: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const list = groups.get(key);
    if (list) list.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

/** `list` in consecutive slices of at most `CHUNK`. */
export function chunks<T>(list: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += CHUNK) out.push(list.slice(i, i + CHUNK));
  return out;
}
