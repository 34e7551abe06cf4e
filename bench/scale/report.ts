// Markdown tables with each figure's ratio against Socket.IO and bare ws,
// the highest rate whose p99 stays under the bound, and the SVG plots of
// latency against rate for the three kinds.
import { svgPlot } from '../lib/plot.js';
import { fmt, ratio as over, table } from '../lib/report.js';
import { COLOURS, type Kind, KINDS, LABEL } from '../lib/servers.js';
import type { BroadcastCpuResult, CrossNodeResult, MemoryResult } from './in-process.js';
import type { BroadcastResult, IdleResult, RecoveryResult, TargetedResult } from './scenarios.js';

/** The p99 bound for "highest sustained rate", ms. */
export const P99_BOUND_MS = 50;

export interface ScaleKindResult {
  kind: Kind;
  idle?: IdleResult;
  broadcast?: BroadcastResult;
  targeted?: TargetedResult[];
  recovery?: RecoveryResult;
  /** The in-process scenarios (see in-process.ts). */
  memory?: MemoryResult;
  broadcastCpu?: BroadcastCpuResult;
  crossNode?: CrossNodeResult[];
  /** A scenario that threw: its name and message (the run goes on with the next). */
  errors: string[];
}

/** Switchboard's figure over a peer's ("2.00×": Switchboard uses twice as much). */
function ratio(results: ScaleKindResult[], peer: Kind, get: (r: ScaleKindResult) => number | undefined): string {
  const sb = results.find((r) => r.kind === 'switchboard');
  const p = results.find((r) => r.kind === peer);
  return over(sb ? get(sb) : undefined, p ? get(p) : undefined);
}

/** The two ratio cells: filled on Switchboard's row, empty on the peers'. */
const ratios = (results: ScaleKindResult[], get: (r: ScaleKindResult) => number | undefined, row?: Kind): string[] =>
  row !== undefined && row !== 'switchboard' ? ['', ''] : [ratio(results, 'socketio', get), ratio(results, 'ws', get)];

export function idleTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'processes', 'opened / asked', 'connect/s (achieved)', 'connect p50 ms', 'p99 ms', 'CPU µs/connect', 'heap B/conn', 'RSS B/conn', 'SB/SIO heap', 'SB/ws heap'],
    results.flatMap((r) => {
      const i = r.idle;
      return i ? [[LABEL[r.kind], String(i.serverProcesses), `${i.opened} / ${i.connections}`, `${i.rate} (${fmt(i.achievedRate, 0)})`, fmt(i.connect.p50, 2), fmt(i.connect.p99, 2), fmt(i.cpuUsPerConnect, 0),
        fmt(i.heapPerConnection, 0), fmt(i.rssPerConnection, 0), ...ratios(results, (x) => x.idle?.heapPerConnection, r.kind)]] : [];
    }),
  );
}

export function broadcastTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'subscribers', 'bursts × pubs', 'delivered / expected', 'lost', 'dup', 'deliveries/s', 'CPU µs/delivery', 'Redis µs/delivery', 'p50 ms', 'p99 ms', 'SB/SIO CPU', 'SB/ws CPU'],
    results.flatMap((r) => {
      const b = r.broadcast;
      return b ? [[LABEL[r.kind], String(b.subscribers), `${b.bursts} × ${b.burst}`, `${b.delivered} / ${b.expected}`, String(b.lost), String(b.duplicates),
        fmt(b.deliveriesPerSecond, 0), fmt(b.cpuUsPerDelivery, 2), r.kind === 'ws' ? '–' : fmt(b.redisCpuUsPerDelivery, 3), fmt(b.latency.p50, 1), fmt(b.latency.p99, 1), ...ratios(results, (x) => x.broadcast?.cpuUsPerDelivery, r.kind)]] : [];
    }),
  );
}

/** The highest rate with p99 under the bound, nothing lost and the generator on pace (≥ 95 % of the rate). */
export function highestRate(list: TargetedResult[] | undefined): number | undefined {
  const ok = (list ?? []).filter((t) => t.latency.p99 < P99_BOUND_MS && t.lost === 0 && t.failed === 0 && t.achievedRate >= 0.95 * t.rate);
  return ok.length === 0 ? undefined : Math.max(...ok.map((t) => t.rate));
}

export function targetedTable(results: ScaleKindResult[]): string {
  const rows = results.flatMap((r) =>
    (r.targeted ?? []).map((t) => {
      const same = (x: ScaleKindResult): number | undefined => x.targeted?.find((y) => y.rate === t.rate)?.latency.p99;
      return [LABEL[r.kind], `${t.rate} (${fmt(t.achievedRate, 0)}${t.achievedRate < 0.95 * t.rate ? ', generator behind' : ''})`, String(t.sent), `${t.lost} (${t.failed})`,
        fmt(t.latency.p50, 2), fmt(t.latency.p99, 2), fmt(t.latency.max, 1), fmt(t.cpuUsPerMessage, 1), r.kind === 'ws' ? '–' : fmt(t.redisCpuUsPerMessage, 1),
        `${fmt(t.server.gcMaxMs, 0)} / ${fmt(t.server.loopDelayMaxMs, 0)}`, fmt(t.generatorLoopDelayMaxMs, 0), ...ratios(results, same, r.kind)];
    }),
  );
  const best = results.map((r) => `${LABEL[r.kind]}: ${highestRate(r.targeted) ?? 'none'}`).join('; ');
  return `${table(['server', 'rate/s (achieved)', 'sent', 'lost (refused)', 'p50 ms', 'p99 ms', 'max ms', 'server CPU µs/msg', 'Redis µs/msg', 'server GC / loop max ms', 'generator loop max ms', 'SB/SIO p99', 'SB/ws p99'], rows)}\n\nHighest rate with p99 < ${P99_BOUND_MS} ms and nothing lost: ${best}`;
}

export function recoveryTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'set-up', 'clients × missed', 'rejoined', 'not recovered', 'complete', 'replayed', 'seconds', 'replayed msg/s'],
    results.flatMap((r) => {
      const v = r.recovery;
      if (!v) return [];
      if (!v.supported) return [[LABEL[r.kind], `not supported: ${v.reason}`, '', '', '', '', '', '', '']];
      return [[LABEL[r.kind], v.setup, `${v.clients} × ${v.missed}`, String(v.rejoined), String(v.notRecovered), String(v.complete), String(v.replayed), fmt(v.seconds, 2), fmt(v.replayedPerSecond, 0)]];
    }),
    2,
  );
}

/** Switchboard's figure over this row's, for the in-process tables' "SB/peer" columns. */
const sbOver = (results: ScaleKindResult[], get: (r: ScaleKindResult) => number | undefined, row: ScaleKindResult): string => {
  const sb = results.find((r) => r.kind === 'switchboard');
  return over(sb ? get(sb) : undefined, get(row));
};

export function memoryTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'connections', 'open s', 'heap B/conn', 'RSS B/conn', 'SB/peer heap', 'SB/peer RSS', 'SB/peer open'],
    results.flatMap((r) => {
      const m = r.memory;
      return m ? [[LABEL[r.kind], String(m.connections), fmt(m.openSeconds, 2), fmt(m.heapPerConnection, 0), fmt(m.rssPerConnection, 0),
        sbOver(results, (x) => x.memory?.heapPerConnection, r), sbOver(results, (x) => x.memory?.rssPerConnection, r), sbOver(results, (x) => x.memory?.openSeconds, r)]] : [];
    }),
  );
}

export function broadcastCpuTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'clients × msgs', 'rate (achieved)', 'delivered / expected', 'lost', 'CPU ms/1000 (A)', 'CPU ms/1000 (B)', 'SB/peer CPU (A)'],
    results.flatMap((r) => {
      const b = r.broadcastCpu;
      return b ? [[LABEL[r.kind], `${b.clients} × ${b.messages}`, `${b.rate} (${fmt(b.achievedRate, 0)})`, `${b.delivered} / ${b.expected}`, String(b.lost),
        fmt(b.cpuPer1000, 1), r.kind === 'ws' ? '–' : fmt(b.cpuPer1000B, 1), sbOver(results, (x) => x.broadcastCpu?.cpuPer1000, r)]] : [];
    }),
  );
}

export function crossNodeTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'rate/s (achieved)', 'sent', 'lost', 'p50 ms', 'p99 ms', 'max ms', 'SB/peer p50', 'SB/peer p99'],
    results.flatMap((r) =>
      (r.crossNode ?? []).map((l) => {
        const at = (x: ScaleKindResult): CrossNodeResult | undefined => x.crossNode?.find((y) => y.rate === l.rate);
        return [LABEL[r.kind], `${l.rate} (${fmt(l.achievedRate, 0)})`, String(l.sent), String(l.lost + l.failedPublishes), fmt(l.p50, 2), fmt(l.p99, 2), fmt(l.max, 1),
          sbOver(results, (x) => at(x)?.p50, r), sbOver(results, (x) => at(x)?.p99, r)];
      }),
    ),
  );
}

/** Targeted sends: p99 (solid) and p50 (dashed) against rate, both axes log-scaled. */
export function targetedPlot(results: ScaleKindResult[], title: string): string {
  const series = KINDS.flatMap((k) => {
    const pts = (results.find((r) => r.kind === k)?.targeted ?? []).filter((t) => Number.isFinite(t.latency.p99));
    return (['p99', 'p50'] as const).map((q) => ({ label: LABEL[k], colour: COLOURS[k], dashed: q === 'p50', points: pts.map((t) => ({ x: t.rate, y: t.latency[q] })) }));
  });
  return svgPlot({
    title, series, width: 760, yScale: 'log', yFloor: 0.1, xSpan: [1000, 10_000],
    xLabel: 'targeted messages per second (log scale)', yLabel: 'latency, ms (log scale)',
    notes: ['solid: p99, dashed: p50'], bound: { y: P99_BOUND_MS, note: `dotted: ${P99_BOUND_MS} ms` },
  });
}

/** Cross-node sends: p99 against rate, log-scaled rate axis, linear latency axis. */
export function crossNodePlot(results: ScaleKindResult[], title: string): string {
  const series = KINDS.map((k) => ({
    label: LABEL[k], colour: COLOURS[k],
    points: (results.find((r) => r.kind === k)?.crossNode ?? []).filter((l) => Number.isFinite(l.p99)).map((l) => ({ x: l.rate, y: l.p99 })),
  }));
  return svgPlot({ title, series, width: 560, yScale: 'linear', xSpan: [100, 1000], xLabel: 'targeted messages per second (log scale)', yLabel: 'p99 latency, ms' });
}
