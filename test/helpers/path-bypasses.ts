/**
 * Spellings of `/metrics` that resolve to it once dot segments, encoded
 * dots, double slashes or backslashes are normalised (issue 19, finding 8):
 * the node and the shipped proxy configs must answer each with 404.
 */
export const METRICS_BYPASSES: readonly string[] = [
  '/./metrics',
  '/%2e/metrics',
  '/%2E/metrics',
  '/x/../metrics',
  '/x/%2e%2e/metrics',
  '/.%2e/metrics',
  '//metrics',
  '/\\metrics',
  '/metrics/.',
  '/api/../metrics',
];
