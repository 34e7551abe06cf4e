/**
 * Request paths are taken as they are written, never normalised. A proxy
 * in front that blocks a path (`/metrics`) matches the raw one: if the node
 * resolved `/./metrics`, `/%2e/metrics` or `/x/../metrics` to `/metrics`,
 * each would slip past the proxy's rule. So a path that would change under
 * normalisation is no endpoint at all (404).
 */

/** The path of a request target, the query left out. */
function rawPath(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

/**
 * Whether `target` (the request line's, e.g. `/api/x?y`) has its path in
 * normal form: the very path `url` (parsed from it) has. Dot segments, plain
 * or percent-encoded, a leading `//` and backslashes all change it.
 */
export function isNormalPath(target: string | undefined, url: URL): boolean {
  return rawPath(target ?? '/') === url.pathname;
}
