// Markdown tables with each figure's ratio against Socket.IO and bare ws
// (and against the `--baseline` checkout's Switchboard when one ran), the
// highest rate whose p99 stays under the bound, and the SVG plots of
// latency against rate for the three kinds.
import { svgPlot } from '../lib/plot.js';
import { fmt, ratio as over, table } from '../lib/report.js';
import { COLOURS, type Kind, KINDS, LABEL } from '../lib/servers.js';
import type { CpuSplit } from '../lib/cluster.js';
import type { ConnectPhase, IdleCpuResult } from './cost.js';
import type { BroadcastCpuResult, CrossNodeResult, MemoryResult } from './in-process.js';
import type { BroadcastResult, FanoutResult, SteadyResult } from './fanout.js';
import type { Via } from './protocol.js';
import type { IdleResult, RecoveryResult, TargetedResult } from './scenarios.js';
import { P99_BOUND_MS, sustained } from './search.js';

export { P99_BOUND_MS };

export interface ScaleKindResult {
  kind: Kind;
  idle?: IdleResult;
  broadcast?: BroadcastResult;
  targeted?: TargetedResult[];
  recovery?: RecoveryResult;
  /** The message-cost scenarios (see fanout.ts): broadcast at steady rates, and the fan-out maximum. */
  steady?: SteadyResult[];
  fanout?: FanoutResult[];
  /** The in-process scenarios (see in-process.ts). */
  memory?: MemoryResult;
  broadcastCpu?: BroadcastCpuResult;
  crossNode?: CrossNodeResult[];
  /** The cost scenarios (see cost.ts): connect phases, and idle CPU per size. */
  connect?: ConnectPhase[];
  idleCpu?: IdleCpuResult[];
  /** A scenario that threw: its name and message (the run goes on with the next). */
  errors: string[];
  /** Set on the row of the `--baseline` checkout's Switchboard: its short commit. */
  baseline?: string;
}

type Figure = (r: ScaleKindResult) => number | undefined;
type Row = (r: ScaleKindResult) => boolean;

/** This checkout's Switchboard (not the baseline's). */
const isCurrent: Row = (r) => r.kind === 'switchboard' && r.baseline === undefined;
const isBaseline: Row = (r) => r.baseline !== undefined;
const isKind = (k: Kind): Row => (r) => r.kind === k && r.baseline === undefined;

/** A row's name: the kind's, or "Switchboard (baseline <commit>)". */
export const labelOf = (r: ScaleKindResult): string => (r.baseline === undefined ? LABEL[r.kind] : `${LABEL.switchboard} (baseline ${r.baseline})`);

/** This checkout's Switchboard figure over the figure of the row `other` picks ("2.00×": Switchboard uses twice as much). */
function quotient(results: ScaleKindResult[], other: Row, get: Figure): number | undefined {
  const sb = results.find(isCurrent);
  const o = results.find(other);
  const a = sb ? get(sb) : undefined;
  const b = o ? get(o) : undefined;
  return a === undefined || b === undefined || !Number.isFinite(a / b) ? undefined : a / b;
}
const ratio = (results: ScaleKindResult[], other: Row, get: Figure): string => over(quotient(results, other, get), 1);

/** Header cells for the baseline columns, only when a baseline ran. */
const baseHeads = (results: ScaleKindResult[], heads: string[]): string[] => (results.some(isBaseline) ? heads : []);

/**
 * The ratio cells: against Socket.IO and bare ws by `get`, then against the
 * baseline by each of `base` when a baseline ran; filled on this checkout's
 * Switchboard row, empty on the others.
 */
function ratios(results: ScaleKindResult[], row: ScaleKindResult, get: Figure, base: Figure[] = []): string[] {
  const vsBase = results.some(isBaseline) ? base.map((g) => ratio(results, isBaseline, g)) : [];
  const cells = [ratio(results, isKind('socketio'), get), ratio(results, isKind('ws'), get), ...vsBase];
  return isCurrent(row) ? cells : cells.map(() => '');
}

const idleHeap: Figure = (x) => x.idle?.heapPerConnection;
const idleRss: Figure = (x) => x.idle?.rssPerConnection;
const broadcastCpu: Figure = (x) => x.broadcast?.cpuUsPerDelivery;
const memoryHeap: Figure = (x) => x.memory?.heapPerConnection;
const memoryRss: Figure = (x) => x.memory?.rssPerConnection;
const broadcastCpuA: Figure = (x) => x.broadcastCpu?.cpuPer1000;
/** The figures compared with the baseline, by the name the JSON gives them. */
const COMPARED: Record<string, Figure> = {
  idleHeapPerConnection: idleHeap, idleRssPerConnection: idleRss, broadcastCpuUsPerDelivery: broadcastCpu,
  memoryHeapPerConnection: memoryHeap, memoryRssPerConnection: memoryRss, broadcastCpuPer1000: broadcastCpuA,
};

/** A connect phase's name: its rate, or "max, N in flight". */
const phaseName = (p: ConnectPhase): string => (p.rate > 0 ? `${p.rate}/s` : `max, ${p.inFlight} in flight`);
/** The same, as the JSON's ratio names carry it: the rate, or "max-N-in-flight". */
const phaseKey = (p: ConnectPhase): string => (p.rate > 0 ? String(p.rate) : `max-${p.inFlight}-in-flight`);
/** The same phase in another row. */
const samePhase = (x: ScaleKindResult, p: ConnectPhase): ConnectPhase | undefined => x.connect?.find((y) => y.rate === p.rate && y.inFlight === p.inFlight);
/** The same size in another row. */
const sameSize = (x: ScaleKindResult, i: IdleCpuResult): IdleCpuResult | undefined => x.idleCpu?.find((y) => y.connections === i.connections);

/** The same steady rate in another row. */
const sameSteady = (x: ScaleKindResult, t: SteadyResult): SteadyResult | undefined => x.steady?.find((y) => y.rate === t.rate);
/**
 * The same targeted rate in another row, sent the same way; the peers have
 * no batch API, so Switchboard's batch rows are set against their HTTP rows.
 */
const sameTargeted = (x: ScaleKindResult, t: TargetedResult): TargetedResult | undefined => {
  const via: Via = t.via === 'batch' && x.kind !== 'switchboard' ? 'http' : t.via;
  return x.targeted?.find((y) => y.rate === t.rate && y.via === via);
};
/** The same fan-out phase (publications in flight) in another row. */
const sameFanout = (x: ScaleKindResult, f: FanoutResult): FanoutResult | undefined => x.fanout?.find((y) => y.inFlight === f.inFlight);
/** A targeted rate's CPU per message, servers and Redis. */
const messageCpu = (t: TargetedResult | undefined): number | undefined => (t ? t.cpuUsPerMessage + t.redisCpuUsPerMessage : undefined);

/** The cost scenarios' compared figures, one per connect phase and idle size this checkout's Switchboard ran, named for the JSON. */
function costFigures(results: ScaleKindResult[]): Record<string, Figure> {
  const sb = results.find(isCurrent);
  return Object.fromEntries([
    ...(sb?.connect ?? []).flatMap((p) => [
      [`connectCpuUsPerConnect@${phaseKey(p)}`, (x: ScaleKindResult) => samePhase(x, p)?.cpuUsPerConnect.total],
      [`connectP99@${phaseKey(p)}`, (x: ScaleKindResult) => samePhase(x, p)?.connect.p99],
    ]),
    ...(sb?.idleCpu ?? []).map((i) => [`idleCpuUsPerConnectionMinute@${i.connections}`, (x: ScaleKindResult) => sameSize(x, i)?.usPerConnectionMinute.total]),
    ...(sb?.steady ?? []).map((t) => [`steadyCpuUsPerDelivery@${t.rate}`, (x: ScaleKindResult) => sameSteady(x, t)?.cpuUsPerDelivery.total]),
    ...(sb?.targeted ?? []).flatMap((t) => [
      [`targetedCpuUsPerMessage@${t.via}@${t.rate}`, (x: ScaleKindResult) => messageCpu(sameTargeted(x, t))],
      [`targetedP99@${t.via}@${t.rate}`, (x: ScaleKindResult) => sameTargeted(x, t)?.latency.p99],
    ]),
    ...(sb?.fanout ?? []).map((f) => [`fanoutCpuUsPerDelivery@${f.inFlight}`, (x: ScaleKindResult) => sameFanout(x, f)?.cpuUsPerDelivery.total]),
  ]) as Record<string, Figure>;
}

/**
 * This checkout's Switchboard over the baseline, Socket.IO and bare ws for
 * each compared figure that both sides measured, for the JSON (the tables
 * show the same quotients).
 */
export function ratiosOfCurrent(results: ScaleKindResult[]): Record<'baseline' | 'socketio' | 'ws', Record<string, number>> {
  const compared = { ...COMPARED, ...costFigures(results) };
  const of = (other: Row): Record<string, number> =>
    Object.fromEntries(Object.entries(compared).flatMap(([name, get]) => {
      const q = quotient(results, other, get);
      return q === undefined ? [] : [[name, +q.toFixed(4)]];
    }));
  return { baseline: of(isBaseline), socketio: of(isKind('socketio')), ws: of(isKind('ws')) };
}

/**
 * A server's whole footprint before the connections and with them, in MB:
 * per-connection figures are differences, so a server that starts smaller
 * (a broker library not loaded) shows a larger one for the same total.
 */
const beforeAfter = (before: number, after: number): string => `${fmt(before / 1e6, 1)} → ${fmt(after / 1e6, 1)}`;

export function idleTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'processes', 'opened / asked', 'connect/s (achieved)', 'connect p50 ms', 'p99 ms', 'CPU µs/connect', 'heap B/conn', 'RSS B/conn', 'heap MB before → after', 'RSS MB before → after', 'SB/SIO heap', 'SB/ws heap', ...baseHeads(results, ['SB/base heap', 'SB/base RSS'])],
    results.flatMap((r) => {
      const i = r.idle;
      return i ? [[labelOf(r), String(i.serverProcesses), `${i.opened} / ${i.connections}`, `${i.rate} (${fmt(i.achievedRate, 0)})`, fmt(i.connect.p50, 2), fmt(i.connect.p99, 2), fmt(i.cpuUsPerConnect, 0),
        fmt(i.heapPerConnection, 0), fmt(i.rssPerConnection, 0), beforeAfter(i.heapBefore, i.heapAfter), beforeAfter(i.rssBefore, i.rssAfter),
        ...ratios(results, r, idleHeap, [idleHeap, idleRss])]] : [];
    }),
  );
}

export function broadcastTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'subscribers', 'bursts × pubs', 'delivered / expected', 'lost', 'dup', 'deliveries/s', 'CPU µs/delivery', 'Redis µs/delivery', 'p50 ms', 'p99 ms', 'SB/SIO CPU', 'SB/ws CPU', ...baseHeads(results, ['SB/base CPU'])],
    results.flatMap((r) => {
      const b = r.broadcast;
      return b ? [[labelOf(r), String(b.subscribers), `${b.bursts} × ${b.burst}`, `${b.delivered} / ${b.expected}`, String(b.lost), String(b.duplicates),
        fmt(b.deliveriesPerSecond, 0), fmt(b.cpuUsPerDelivery, 2), r.kind === 'ws' ? '–' : fmt(b.redisCpuUsPerDelivery, 3), fmt(b.latency.p50, 1), fmt(b.latency.p99, 1), ...ratios(results, r, broadcastCpu, [broadcastCpu])]] : [];
    }),
  );
}

/** The highest rate with p99 under the bound, nothing lost or refused and the generator on pace, of those sent `via`. */
export function highestRate(list: TargetedResult[] | undefined, via: Via): number | undefined {
  const ok = (list ?? []).filter((t) => t.via === via && sustained(t));
  return ok.length === 0 ? undefined : Math.max(...ok.map((t) => t.rate));
}

/** The ways in that `results` sent targeted messages, in the order of the first row that used each. */
const viasOf = (results: ScaleKindResult[]): Via[] => [...new Set(results.flatMap((r) => (r.targeted ?? []).map((t) => t.via)))];

export function targetedTable(results: ScaleKindResult[]): string {
  const rows = results.flatMap((r) =>
    (r.targeted ?? []).map((t) => {
      const p99: Figure = (x) => sameTargeted(x, t)?.latency.p99;
      const cpu: Figure = (x) => messageCpu(sameTargeted(x, t));
      return [labelOf(r), t.via, `${t.rate}${t.searched ? ' (search)' : ''} (${fmt(t.achievedRate, 0)}${t.achievedRate < 0.95 * t.rate ? ', generator behind' : ''})`, String(t.sent), `${t.lost} (${t.failed})`,
        fmt(t.latency.p50, 2), fmt(t.latency.p99, 2), fmt(t.latency.max, 1), fmt(t.cpuUsPerMessage, 1), r.kind === 'ws' ? '–' : fmt(t.redisCpuUsPerMessage, 1),
        `${fmt(t.server.gcMaxMs, 0)} / ${fmt(t.server.loopDelayMaxMs, 0)}`, fmt(t.generatorLoopDelayMaxMs, 0), ...ratios(results, r, cpu), ...ratios(results, r, p99)];
    }),
  );
  const best = viasOf(results).map((via) => `${via}: ${results.filter((r) => r.targeted?.some((t) => t.via === via)).map((r) => `${labelOf(r)} ${highestRate(r.targeted, via) ?? 'none'}`).join(', ')}`).join('; ');
  return `${table(['server', 'via', 'rate/s (achieved)', 'sent', 'lost (refused)', 'p50 ms', 'p99 ms', 'max ms', 'server CPU µs/msg', 'Redis µs/msg', 'server GC / loop max ms', 'generator loop max ms', 'SB/SIO CPU', 'SB/ws CPU', 'SB/SIO p99', 'SB/ws p99'], rows, 2)}

Highest rate with p99 < ${P99_BOUND_MS} ms and nothing lost or refused (of the rates tried): ${best}. The ratios set Switchboard's batch rows against the peers' HTTP rows (they have no batch API).`;
}

/** ", N failed" after a count of publications when some failed (an error or no HTTP answer in time; counted as lost where never delivered). */
const failedNote = (failed: number): string => (failed > 0 ? `, ${failed} failed` : '');

export function steadyTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'pubs/s (achieved)', 'publications', 'delivered / expected', 'lost', 'dup', 'conns off', 'deliveries/s', 'servers µs/delivery', 'Redis µs/delivery', 'total µs/delivery', 'p50 ms', 'p99 ms', 'server GC / loop max ms', 'SB/SIO CPU', 'SB/ws CPU', ...baseHeads(results, ['SB/base CPU'])],
    results.flatMap((r) =>
      (r.steady ?? []).map((t) => {
        const cpu: Figure = (x) => sameSteady(x, t)?.cpuUsPerDelivery.total;
        return [labelOf(r), `${t.rate} (${fmt(t.achievedRate, 0)})`, `${t.publications}${failedNote(t.failedPublications)}`, `${t.delivered} / ${t.expected}`, String(t.lost), String(t.duplicates), String(t.connectionsOff),
          fmt(t.deliveriesPerSecond, 0), ...cpuCells(r, t.cpuUsPerDelivery, 2), fmt(t.latency.p50, 1), fmt(t.latency.p99, 1), `${fmt(t.server.gcMaxMs, 0)} / ${fmt(t.server.loopDelayMaxMs, 0)}`, ...ratios(results, r, cpu, [cpu])];
      }),
    ),
  );
}

export function fanoutTable(results: ScaleKindResult[]): string {
  const rows = results.flatMap((r) =>
    (r.fanout ?? []).map((f) => {
      const fan: Figure = (x) => sameFanout(x, f)?.cpuUsPerDelivery.total;
      const c = f.corePercent;
      return [labelOf(r), String(f.connections), `${f.serverProcesses} / ${f.generators}`, `${f.publications} (${f.inFlight})${failedNote(f.failedPublications)}`, `${f.delivered} / ${f.expected}`, String(f.lost), String(f.duplicates), fmt(f.seconds, 1),
        fmt(f.deliveriesPerSecond, 0), ...cpuCells(r, f.cpuUsPerDelivery, 2), fmt(f.generatorCpuUsPerDelivery, 2),
        `${[c.servers, c.redis, c.generators, c.coordinator, c.other].map((v) => fmt(v, 0)).join(' / ')} of ${c.cores * 100}`, fmt(f.latency.p50, 1), fmt(f.latency.p99, 1), ...ratios(results, r, fan)];
    }),
  );
  const best = results.filter((r) => r.fanout?.length).map((r) => `${labelOf(r)} ${fmt(Math.max(...(r.fanout ?? []).map((f) => f.deliveriesPerSecond)), 0)}`).join('; ');
  return `${table(['server', 'connections', 'server processes / generators', 'publications (in flight)', 'delivered / expected', 'lost', 'dup', 'seconds', 'deliveries/s', 'servers µs/delivery', 'Redis µs/delivery', 'total µs/delivery', 'generators µs/delivery',
    '% core: servers / Redis / generators / publisher / other', 'p50 ms', 'p99 ms', 'SB/SIO CPU', 'SB/ws CPU'], rows)}

Highest deliveries per second counted at the clients (lost and dup above say whether each was exactly once): ${best}`;
}

export function recoveryTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'set-up', 'clients × missed', 'rejoined', 'not recovered', 'complete', 'replayed', 'seconds', 'replayed msg/s'],
    results.flatMap((r) => {
      const v = r.recovery;
      if (!v) return [];
      if (!v.supported) return [[labelOf(r), `not supported: ${v.reason}`, '', '', '', '', '', '', '']];
      return [[labelOf(r), v.setup, `${v.clients} × ${v.missed}`, String(v.rejoined), String(v.notRecovered), String(v.complete), String(v.replayed), fmt(v.seconds, 2), fmt(v.replayedPerSecond, 0)]];
    }),
    2,
  );
}

/** Servers, their redis-server, and both (bare ws has no broker: "–"). */
const cpuCells = (r: ScaleKindResult, x: CpuSplit, digits: number): string[] => [fmt(x.servers, digits), r.kind === 'ws' ? '–' : fmt(x.redis, digits), fmt(x.total, digits)];

export function connectTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'phase', 'opened / asked', 'connect/s (achieved)', 'p50 ms', 'p99 ms', 'max ms', 'servers µs/connect', 'Redis µs/connect', 'total µs/connect', 'server GC / loop max ms', 'generator loop max ms', 'load 1 min',
      'SB/SIO CPU', 'SB/ws CPU', ...baseHeads(results, ['SB/base CPU']), 'SB/SIO p99', 'SB/ws p99', ...baseHeads(results, ['SB/base p99'])],
    results.flatMap((r) =>
      (r.connect ?? []).map((p) => {
        const cpu: Figure = (x) => samePhase(x, p)?.cpuUsPerConnect.total;
        const p99: Figure = (x) => samePhase(x, p)?.connect.p99;
        return [labelOf(r), phaseName(p), `${p.opened} / ${p.count}`, fmt(p.achievedRate, 0), fmt(p.connect.p50, 2), fmt(p.connect.p99, 2), fmt(p.connect.max, 1),
          ...cpuCells(r, p.cpuUsPerConnect, 0), `${fmt(p.server.gcMaxMs, 0)} / ${fmt(p.server.loopDelayMaxMs, 0)}`, fmt(p.generatorLoopDelayMaxMs, 0), fmt(p.load1, 2), ...ratios(results, r, cpu, [cpu]), ...ratios(results, r, p99, [p99])];
      }),
    ),
    2,
  );
}

export function idleCpuTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'connections (opened)', 'processes', 'window s', 'servers % core', 'Redis % core', 'total % core', 'servers µs/conn/min', 'Redis µs/conn/min', 'total µs/conn/min', 'load 1 min start → end',
      'SB/SIO total', 'SB/ws total', ...baseHeads(results, ['SB/base total'])],
    results.flatMap((r) =>
      (r.idleCpu ?? []).map((i) => {
        const total: Figure = (x) => sameSize(x, i)?.usPerConnectionMinute.total;
        return [labelOf(r), `${i.connections} (${i.opened})`, String(i.serverProcesses), fmt(i.windowSeconds, 0), ...cpuCells(r, i.corePercent, 2), ...cpuCells(r, i.usPerConnectionMinute, 1),
          `${fmt(i.loadStart[0] ?? NaN, 2)} → ${fmt(i.loadEnd[0] ?? NaN, 2)}`, ...ratios(results, r, total, [total])];
      }),
    ),
  );
}

/** This checkout's Switchboard figure over this row's, for the in-process tables' "SB/peer" columns (on the baseline's row: SB/base). */
const sbOver = (results: ScaleKindResult[], get: Figure, row: ScaleKindResult): string => ratio(results, (r) => r === row, get);

export function memoryTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'connections', 'open s', 'heap B/conn', 'RSS B/conn', 'SB/peer heap', 'SB/peer RSS', 'SB/peer open'],
    results.flatMap((r) => {
      const m = r.memory;
      return m ? [[labelOf(r), String(m.connections), fmt(m.openSeconds, 2), fmt(m.heapPerConnection, 0), fmt(m.rssPerConnection, 0),
        sbOver(results, memoryHeap, r), sbOver(results, memoryRss, r), sbOver(results, (x) => x.memory?.openSeconds, r)]] : [];
    }),
  );
}

export function broadcastCpuTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'clients × msgs', 'rate (achieved)', 'delivered / expected', 'lost', 'CPU ms/1000 (A)', 'CPU ms/1000 (B)', 'SB/peer CPU (A)'],
    results.flatMap((r) => {
      const b = r.broadcastCpu;
      return b ? [[labelOf(r), `${b.clients} × ${b.messages}`, `${b.rate} (${fmt(b.achievedRate, 0)})`, `${b.delivered} / ${b.expected}`, String(b.lost),
        fmt(b.cpuPer1000, 1), r.kind === 'ws' ? '–' : fmt(b.cpuPer1000B, 1), sbOver(results, broadcastCpuA, r)]] : [];
    }),
  );
}

export function crossNodeTable(results: ScaleKindResult[]): string {
  return table(
    ['server', 'rate/s (achieved)', 'sent', 'lost', 'p50 ms', 'p99 ms', 'max ms', 'SB/peer p50', 'SB/peer p99'],
    results.flatMap((r) =>
      (r.crossNode ?? []).map((l) => {
        const at = (x: ScaleKindResult): CrossNodeResult | undefined => x.crossNode?.find((y) => y.rate === l.rate);
        return [labelOf(r), `${l.rate} (${fmt(l.achievedRate, 0)})`, String(l.sent), String(l.lost + l.failedPublishes), fmt(l.p50, 2), fmt(l.p99, 2), fmt(l.max, 1),
          sbOver(results, (x) => at(x)?.p50, r), sbOver(results, (x) => at(x)?.p99, r)];
      }),
    ),
  );
}

/** A colour per way in, for the plots when a kind sent more than one way. */
const VIA_COLOURS: Record<Kind, Record<Via, string>> = {
  switchboard: { ws: COLOURS.switchboard, http: '#ff7f0e', batch: '#8c564b' },
  socketio: { ws: COLOURS.socketio, http: '#17becf', batch: '#9467bd' },
  ws: { ws: COLOURS.ws, http: '#bcbd22', batch: '#7f7f7f' },
};

/** Targeted sends: p99 (solid) and p50 (dashed) against rate, both axes log-scaled; a series per kind and way in. */
export function targetedPlot(results: ScaleKindResult[], title: string): string {
  const several = viasOf(results).length > 1;
  const series = KINDS.flatMap((k) =>
    viasOf(results).flatMap((via) => {
      const pts = (results.find(isKind(k))?.targeted ?? []).filter((t) => t.via === via && Number.isFinite(t.latency.p99)).sort((x, y) => x.rate - y.rate);
      if (pts.length === 0) return [];
      const label = several ? `${LABEL[k]} (${via})` : LABEL[k];
      return (['p99', 'p50'] as const).map((q) => ({ label, colour: VIA_COLOURS[k][via], dashed: q === 'p50', points: pts.map((t) => ({ x: t.rate, y: t.latency[q] })) }));
    }),
  );
  return svgPlot({
    title, series, width: 820, yScale: 'log', yFloor: 0.1, xSpan: [1000, 10_000],
    xLabel: 'targeted messages per second (log scale)', yLabel: 'latency, ms (log scale)',
    notes: ['solid: p99, dashed: p50'], bound: { y: P99_BOUND_MS, note: `dotted: ${P99_BOUND_MS} ms` },
  });
}

/** Broadcast at steady rates: p99 (solid) and p50 (dashed) publish-to-delivery against publications per second. */
export function steadyPlot(results: ScaleKindResult[], title: string): string {
  const series = KINDS.flatMap((k) => {
    const pts = (results.find(isKind(k))?.steady ?? []).filter((t) => Number.isFinite(t.latency.p99));
    return (['p99', 'p50'] as const).map((q) => ({ label: LABEL[k], colour: COLOURS[k], dashed: q === 'p50', points: pts.map((t) => ({ x: t.rate, y: t.latency[q] })) }));
  });
  return svgPlot({ title, series, width: 760, yScale: 'log', yFloor: 0.1, xSpan: [10, 1000], xLabel: 'publications per second (log scale)', yLabel: 'latency, ms (log scale)', notes: ['solid: p99, dashed: p50'] });
}

/** Cross-node sends: p99 against rate, log-scaled rate axis, linear latency axis. */
export function crossNodePlot(results: ScaleKindResult[], title: string): string {
  const series = KINDS.map((k) => ({
    label: LABEL[k], colour: COLOURS[k],
    points: (results.find(isKind(k))?.crossNode ?? []).filter((l) => Number.isFinite(l.p99)).map((l) => ({ x: l.rate, y: l.p99 })),
  }));
  return svgPlot({ title, series, width: 560, yScale: 'linear', xSpan: [100, 1000], xLabel: 'targeted messages per second (log scale)', yLabel: 'p99 latency, ms' });
}
