/**
 * deploy/grafana-dashboard.json and docs/metrics.md against the node's real
 * metrics registry: the dashboard is an importable Grafana dashboard whose
 * every query uses only metrics the node registers (counters only through
 * `rate()`, histograms only through `histogram_quantile` over `_bucket`),
 * and the doc lists exactly the Switchboard metrics the node has. Also
 * `Metrics.brokerCall`, which times the broker round trips.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/server/metrics.js';
import { sleep } from '../helpers/wait.js';

interface Target {
  expr: string;
  refId: string;
  datasource: { uid: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets: Target[];
}

interface Dashboard {
  __inputs: Array<{ name: string; type: string; pluginId: string }>;
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; query: { query: string } }> };
}

const dashboard = JSON.parse(readFileSync(new URL('../../deploy/grafana-dashboard.json', import.meta.url), 'utf8')) as Dashboard;
const doc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');

/** Name → type of every metric in a fresh node registry (the prom-client default metrics included). */
async function registered(): Promise<Map<string, string>> {
  const m = new Metrics({ node: 'grafana-test' });
  return new Map((await m.registry.getMetricsAsJSON()).map((x) => [x.name, String(x.type)]));
}

/** The metric names an expression uses (with a histogram's `_bucket`/`_count`/`_sum` suffix). */
function namesIn(expr: string): string[] {
  return [...expr.matchAll(/\b(switchboard_[a-z0-9_]+)/g)].map((m) => m[1]!);
}

/** A series name resolved to its metric: `x_bucket` of histogram `x` is `x`. */
function metricOf(series: string, types: Map<string, string>): { name: string; type: string } | undefined {
  if (types.has(series)) return { name: series, type: types.get(series)! };
  const base = series.replace(/_(bucket|count|sum)$/, '');
  return types.get(base) === 'histogram' ? { name: base, type: 'histogram' } : undefined;
}

const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));

describe('deploy/grafana-dashboard.json', () => {
  it('is an importable dashboard with a Prometheus data source input', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.uid).toBe('switchboard');
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(15);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.datasource.uid, p.title).toBe('${DS_PROMETHEUS}');
      expect(new Set(p.targets.map((t) => t.refId)).size, p.title).toBe(p.targets.length);
    }
  });

  it('lays the panels out without overlap', () => {
    const cells = new Set<string>();
    for (const { gridPos: g, title } of dashboard.panels) {
      expect(g.x + g.w, title).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          expect(cells.has(`${x},${y}`), `${title} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
    }
  });

  it('queries only metrics the node registers, counters through rate() and histograms through histogram_quantile', async () => {
    const types = await registered();
    const unknown: string[] = [];
    for (const { panel, expr } of exprs) {
      const names = namesIn(expr);
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const series of names) {
        const metric = metricOf(series, types);
        if (!metric) {
          unknown.push(`${panel}: ${series}`);
          continue;
        }
        if (metric.type === 'counter') expect(expr, panel).toContain(`rate(${series}`);
        if (metric.type === 'histogram') {
          expect(series, panel).toBe(`${metric.name}_bucket`);
          expect(expr, panel).toMatch(/^histogram_quantile\(0\.\d+, sum by \([^)]*\ble\b[^)]*\) \(rate\(/);
        }
      }
      // Per node: every query keeps `instance` and honours the dashboard's node filter.
      expect(expr, panel).toMatch(/by \([^)]*\binstance\b/);
      expect(expr, panel).toContain('instance=~"$instance"');
    }
    expect(unknown).toEqual([]);
    // The node variable reads a metric that exists too.
    for (const v of dashboard.templating.list) {
      for (const series of namesIn(v.query.query)) expect(types.has(series), v.name).toBe(true);
    }
  });

  it('has a panel for every Switchboard metric', async () => {
    const used = new Set(exprs.flatMap(({ expr }) => namesIn(expr).map((s) => s.replace(/_bucket$/, ''))));
    const own = [...(await registered()).keys()].filter((n) => !/^switchboard_(process|nodejs)_/.test(n));
    expect(own.filter((n) => !used.has(n))).toEqual([]);
  });
});

describe('docs/metrics.md', () => {
  it('documents exactly the Switchboard metrics the node registers, with their types', async () => {
    const types = await registered();
    const rows = [...doc.matchAll(/^\| `(switchboard_[a-z0-9_]+)` \| (counter|gauge|histogram) \|/gm)].map((m) => [m[1]!, m[2]!] as const);
    expect(rows.length).toBeGreaterThanOrEqual(20);
    for (const [name, type] of rows) expect(types.get(name), name).toBe(type);
    const documented = new Set(rows.map(([name]) => name));
    const own = [...types.keys()].filter((n) => !/^switchboard_(process|nodejs)_/.test(n));
    expect(own.filter((n) => !documented.has(n))).toEqual([]);
  });
});

describe('Metrics.brokerCall', () => {
  /** One sample of `series` (a counter, or a histogram's `_count`/`_sum`) with `labels`. */
  async function value(m: Metrics, series: string, labels: Record<string, string>): Promise<number> {
    const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === series.replace(/_(count|sum)$/, ''));
    const samples = (metric?.values ?? []).filter(
      (v) =>
        ((v as { metricName?: string }).metricName ?? metric!.name) === series && Object.entries(labels).every(([k, l]) => v.labels[k] === l),
    );
    expect(samples.length, `${series} ${JSON.stringify(labels)}`).toBe(1);
    return Number(samples[0]!.value);
  }

  it('times each call by operation and counts the failures, rethrowing them unchanged', async () => {
    const m = new Metrics({ node: 'grafana-test' });
    expect(await value(m, 'switchboard_broker_round_trip_seconds_count', { operation: 'publish' })).toBe(0);
    expect(await m.brokerCall('publish', async () => 42)).toBe(42);
    const boom = new Error('broker down');
    await expect(m.brokerCall('history', () => Promise.reject(boom))).rejects.toBe(boom);
    await expect(
      m.brokerCall('history', async () => {
        await sleep(20);
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await value(m, 'switchboard_broker_round_trip_seconds_count', { operation: 'publish' })).toBe(1);
    expect(await value(m, 'switchboard_broker_round_trip_seconds_count', { operation: 'history' })).toBe(2);
    expect(await value(m, 'switchboard_broker_round_trip_seconds_sum', { operation: 'history' })).toBeGreaterThanOrEqual(0.015);
    expect(await value(m, 'switchboard_broker_errors_total', { operation: 'history' })).toBe(2);
    expect(await value(m, 'switchboard_broker_errors_total', { operation: 'publish' })).toBe(0);
  });
});
