// The report: medians of repeats, the printed tables, problems, and the
// machine description for the JSON result.
import { fmt as format, table } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { BASELINE } from './settings.js';
import type { RunResult } from './run.js';
import type { MovedResult } from './moves.js';

/** Repeats of one (broker, strategy, N): medians of the figures, sums of the problems. */
export function combine(list: RunResult[]): RunResult {
  const first = list[0]!;
  if (list.length === 1) return first;
  const med = (f: (r: RunResult) => number): number => median(list.map(f));
  const sum = (f: (r: RunResult) => number): number => list.reduce((s, r) => s + f(r), 0);
  return {
    ...first,
    failedPublications: sum((r) => r.failedPublications),
    firstError: list.find((r) => r.firstError)?.firstError,
    publishMs: med((r) => r.publishMs),
    offOwner: sum((r) => r.offOwner),
    warmupLost: sum((r) => r.warmupLost),
    accounting: {
      expected: sum((r) => r.accounting.expected),
      delivered: sum((r) => r.accounting.delivered),
      lost: sum((r) => r.accounting.lost),
      duplicates: sum((r) => r.accounting.duplicates),
      stray: sum((r) => r.accounting.stray),
    },
    brokerMessages: med((r) => r.brokerMessages),
    brokerUnused: med((r) => r.brokerUnused),
    messagesOut: med((r) => r.messagesOut),
    brokerBytes: med((r) => r.brokerBytes),
    storeBytes: med((r) => r.storeBytes),
    nodeCpuMs: med((r) => r.nodeCpuMs),
    brokerCpuMs: med((r) => r.brokerCpuMs),
    benchCpuMs: med((r) => r.benchCpuMs),
    otherCores: med((r) => r.otherCores),
    windowMs: med((r) => r.windowMs),
    repeats: list.length,
    latencyMs: {
      p50: med((r) => r.latencyMs.p50),
      p99: med((r) => r.latencyMs.p99),
      max: Math.max(...list.map((r) => r.latencyMs.max)),
      samples: sum((r) => r.latencyMs.samples),
    },
    perDelivery: {
      brokerMessages: med((r) => r.perDelivery.brokerMessages),
      brokerBytes: med((r) => r.perDelivery.brokerBytes),
      storeBytes: med((r) => r.perDelivery.storeBytes),
      nodeCpuUs: med((r) => r.perDelivery.nodeCpuUs),
      brokerCpuUs: med((r) => r.perDelivery.brokerCpuUs),
    },
    notes: [...new Set(list.flatMap((r) => r.notes))],
  };
}

/** A figure; '–' when it is not finite. */
export const fmt = (v: number, digits = 0): string => format(v, digits, '–');
const pct = (v: number, digits = 1): string => `${fmt(v * 100, digits)} %`;
const times = (v: number, base: number | undefined): string =>
  Number.isNaN(v) || Number.isNaN(base) ? 'n/a' : base === undefined || !(base > 0) ? '–' : `${fmt(v / base, 2)}×`;

/** A measured figure, or n/a where the broker gives none (the notes under the table say why). */
const na = (v: number, digits = 0): string => (Number.isNaN(v) ? 'n/a' : fmt(v, digits));

export function mainTable(runs: RunResult[]): string {
  return table(
    [
      'broker',
      'strategy',
      'nodes',
      'delivered',
      'lost',
      'dup',
      'broker msgs / delivery',
      'unused',
      'broker bytes / delivery',
      'of which store',
      'p50 ms',
      'p99 ms',
      'node CPU µs / delivery',
      'broker CPU µs / delivery',
      'other load',
    ],
    runs.map((r) => [
      r.brokerLabel,
      r.label,
      String(r.nodes),
      fmt(r.accounting.delivered),
      r.accounting.lost > 0 ? `**${r.accounting.lost}**` : '0',
      r.accounting.duplicates > 0 ? `**${r.accounting.duplicates}**` : '0',
      fmt(r.perDelivery.brokerMessages, 3),
      pct(r.brokerMessages > 0 ? r.brokerUnused / r.brokerMessages : 0, 0),
      na(r.perDelivery.brokerBytes),
      r.broker === 'rabbitmq' ? na(r.perDelivery.storeBytes) : '–',
      fmt(r.latencyMs.p50, 1),
      fmt(r.latencyMs.p99, 1),
      fmt(r.perDelivery.nodeCpuUs),
      na(r.perDelivery.brokerCpuUs),
      na(r.otherCores, 2),
    ]),
    2,
  );
}

/** Each broker's strategies against its own `broadcast` at the same N. */
export function ratioTable(runs: RunResult[]): string {
  const base = (r: RunResult): RunResult | undefined => runs.find((b) => b.broker === r.broker && b.nodes === r.nodes && b.strategy === BASELINE);
  return table(
    ['broker', 'strategy', 'nodes', 'broker msgs', 'broker bytes', 'p50', 'p99', 'node CPU', 'broker CPU'],
    runs
      .filter((r) => r.strategy !== BASELINE)
      .map((r) => {
        const b = base(r);
        return [
          r.brokerLabel,
          r.label,
          String(r.nodes),
          times(r.perDelivery.brokerMessages, b?.perDelivery.brokerMessages),
          times(r.perDelivery.brokerBytes, b?.perDelivery.brokerBytes),
          times(r.latencyMs.p50, b?.latencyMs.p50),
          times(r.latencyMs.p99, b?.latencyMs.p99),
          times(r.perDelivery.nodeCpuUs, b?.perDelivery.nodeCpuUs),
          times(r.perDelivery.brokerCpuUs, b?.perDelivery.brokerCpuUs),
        ];
      }),
    2,
  );
}

/** NATS and RabbitMQ against Redis, same strategy and N; empty when Redis did not run. */
export function brokerTable(runs: RunResult[]): string {
  const redis = (r: RunResult): RunResult | undefined => runs.find((b) => b.broker === 'redis' && b.nodes === r.nodes && b.strategy === r.strategy);
  const rows = runs.filter((r) => r.broker !== 'redis' && redis(r));
  if (rows.length === 0) return '';
  return table(
    ['broker', 'strategy', 'nodes', 'broker bytes', 'p50', 'p99', 'node CPU', 'broker CPU'],
    rows.map((r) => {
      const b = redis(r)!;
      return [
        r.brokerLabel,
        r.label,
        String(r.nodes),
        times(r.perDelivery.brokerBytes, b.perDelivery.brokerBytes),
        times(r.latencyMs.p50, b.latencyMs.p50),
        times(r.latencyMs.p99, b.latencyMs.p99),
        times(r.perDelivery.nodeCpuUs, b.perDelivery.nodeCpuUs),
        times(r.perDelivery.brokerCpuUs, b.perDelivery.brokerCpuUs),
      ];
    }),
    2,
  );
}

/** Every run's notes, once each, by broker. */
export function notes(runs: RunResult[]): string[] {
  return [...new Set(runs.flatMap((r) => r.notes.map((n) => `${r.brokerLabel}: ${n}`)))];
}

export function movedTable(m: MovedResult): string {
  const ms = m.measured;
  return table(
    ['change', `computed (${fmt(m.computed.keys)} ids)`, `computed (the ${m.computedBenchUsers.keys} bench users)`, `measured (${ms.users} live users)`, 'ideal'],
    [
      ['4 → 5 nodes', pct(m.computed.join), pct(m.computedBenchUsers.join), `${pct(ms.join / ms.users)} (${ms.join})`, pct(1 / 5)],
      ['5 → 4 nodes', pct(m.computed.leave), pct(m.computedBenchUsers.leave), `${pct(ms.leave / ms.users)} (${ms.leave})`, pct(1 / 5)],
    ],
  );
}

/** Any run that lost, duplicated or misdelivered a message, or had a publication refused: said loudly. */
export function problems(runs: RunResult[]): string[] {
  const out: string[] = [];
  for (const r of runs) {
    const a = r.accounting;
    if (a.lost || a.duplicates || a.stray) {
      out.push(`${r.brokerLabel} ${r.label} N=${r.nodes}: ${a.lost} lost, ${a.duplicates} duplicated, ${a.stray} misdelivered of ${a.expected} expected copies`);
    }
    if (r.warmupLost) out.push(`${r.brokerLabel} ${r.label} N=${r.nodes}: ${r.warmupLost} copies lost during warm-up`);
    if (r.failedPublications) out.push(`${r.brokerLabel} ${r.label} N=${r.nodes}: ${r.failedPublications} publications refused (${r.firstError ?? ''})`);
    if (r.offOwner) out.push(`${r.brokerLabel} ${r.label} N=${r.nodes}: ${r.offOwner} users not on their owner after connecting`);
  }
  return out;
}

/** One line per run as it finishes. */
export function progress(r: RunResult): string {
  const a = r.accounting;
  return (
    `${r.brokerLabel.padEnd(8)} ${r.label.padEnd(19)} N=${r.nodes}: ${fmt(a.delivered)}/${fmt(a.expected)} delivered` +
    `${a.lost || a.duplicates || a.stray ? ` — ${a.lost} LOST, ${a.duplicates} dup, ${a.stray} stray` : ''}, ` +
    `${fmt(r.perDelivery.brokerMessages, 3)} broker msgs, ${na(r.perDelivery.brokerBytes)} B, p50 ${fmt(r.latencyMs.p50, 1)} ms, p99 ${fmt(r.latencyMs.p99, 1)} ms, ` +
    `${fmt(r.perDelivery.nodeCpuUs)} µs node CPU per delivery, other load ${fmt(r.otherCores, 2)} cores`
  );
}
