/**
 * Reading a node's Prometheus figures in tests, for waiting on what a node
 * does without telling a client (e.g. writing acknowledged positions).
 */

/**
 * The sum of the counters or gauges `name` at `metricsUrl` (a node's
 * `/metrics`) whose labels include `labels`, e.g.
 * `metric(url, 'switchboard_acks_saved_total', { result: 'ok' })`.
 */
export async function metric(metricsUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(2000) })).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ?? '';
    if (wanted.every((w) => have.split(',').includes(w))) sum += Number(m[3]);
  }
  return sum;
}
