// Markdown tables with each figure's ratio against Socket.IO and bare ws,
// the highest rate whose p99 stays under the bound, and the SVG plot of p99
// (solid) and p50 (dashed) latency against rate for the three kinds.
import { COLOURS, escape, fmt, table } from '../peers/report.js';
import { type Kind, KINDS, LABEL } from '../peers/servers.js';
import type { BroadcastResult, IdleResult, RecoveryResult, TargetedResult } from './scenarios.js';

/** The p99 bound for "highest sustained rate", ms. */
export const P99_BOUND_MS = 50;

export interface ScaleKindResult {
  kind: Kind;
  idle?: IdleResult;
  broadcast?: BroadcastResult;
  targeted?: TargetedResult[];
  recovery?: RecoveryResult;
  /** A scenario that threw: its name and message (the run goes on with the next). */
  errors: string[];
}

/** Switchboard's figure over a peer's ("2.00×": Switchboard uses twice as much). */
function ratio(results: ScaleKindResult[], peer: Kind, get: (r: ScaleKindResult) => number | undefined): string {
  const sb = results.find((r) => r.kind === 'switchboard');
  const p = results.find((r) => r.kind === peer);
  const a = sb ? get(sb) : undefined;
  const b = p ? get(p) : undefined;
  return a === undefined || b === undefined || !Number.isFinite(a / b) ? 'n/a' : `${(a / b).toFixed(2)}×`;
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
  );
}

/** Latency axis: log scale from 0.1 ms to the next power of ten above the worst p99, so both sub-ms medians and second-long tails show. */
const Y_FLOOR_MS = 0.1;

/** p99 (solid) and p50 (dashed) against rate, log-scaled rate axis and log-scaled latency axis. */
export function svgPlot(results: ScaleKindResult[], title: string): string {
  const W = 760, H = 360, L = 60, R = 220, T = 40, B = 50;
  const series = KINDS.map((k) => ({ kind: k, pts: (results.find((r) => r.kind === k)?.targeted ?? []).filter((t) => Number.isFinite(t.latency.p99)) }));
  const rates = series.flatMap((s) => s.pts.map((p) => p.rate));
  const yLo = Math.log10(Y_FLOOR_MS);
  const yHi = Math.max(2, Math.ceil(Math.log10(Math.max(1, ...series.flatMap((s) => s.pts.map((p) => p.latency.p99))))));
  const lo = Math.log10(Math.min(...rates, 1000)), hi = Math.log10(Math.max(...rates, 10_000));
  const x = (rate: number): number => L + ((Math.log10(rate) - lo) / Math.max(1e-9, hi - lo)) * (W - L - R);
  const y = (ms: number): number => H - B - ((Math.log10(Math.max(ms, Y_FLOOR_MS)) - yLo) / (yHi - yLo)) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${(W - R) / 2 + L / 2}" y="20" text-anchor="middle" font-size="14">${escape(title)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">targeted messages per second (log scale)</text>`,
    `<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">latency, ms (log scale)</text>`,
  ];
  for (let e = yLo; e <= yHi; e++) {
    const v = 10 ** e;
    out.push(`<line x1="${L}" y1="${y(v)}" x2="${W - R}" y2="${y(v)}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v < 1 ? v.toFixed(1) : v.toFixed(0)}</text>`);
  }
  out.push(`<line x1="${L}" y1="${y(P99_BOUND_MS)}" x2="${W - R}" y2="${y(P99_BOUND_MS)}" stroke="#999" stroke-dasharray="2,3"/>`);
  for (const r of [...new Set(rates)].sort((a, b) => a - b)) out.push(`<text x="${x(r)}" y="${H - B + 16}" text-anchor="middle">${r}</text>`, `<line x1="${x(r)}" y1="${H - B}" x2="${x(r)}" y2="${H - B + 4}" stroke="black"/>`);
  series.forEach((s, i) => {
    const c = COLOURS[s.kind];
    for (const [q, dash] of [['p99', ''], ['p50', ' stroke-dasharray="5,4"']] as const) {
      if (s.pts.length > 0) out.push(`<polyline fill="none" stroke="${c}" stroke-width="2"${dash} points="${s.pts.map((p) => `${x(p.rate).toFixed(1)},${y(p.latency[q]).toFixed(1)}`).join(' ')}"/>`);
      for (const p of s.pts) out.push(`<circle cx="${x(p.rate).toFixed(1)}" cy="${y(p.latency[q]).toFixed(1)}" r="${q === 'p99' ? 3.5 : 2.5}" fill="${c}"/>`);
    }
    const ly = T + 10 + i * 20;
    out.push(`<line x1="${W - R + 15}" y1="${ly}" x2="${W - R + 35}" y2="${ly}" stroke="${c}" stroke-width="2"/>`, `<text x="${W - R + 40}" y="${ly + 4}">${escape(LABEL[s.kind])}</text>`);
  });
  const ly = T + 10 + KINDS.length * 20 + 10;
  out.push(`<text x="${W - R + 15}" y="${ly + 4}">solid: p99, dashed: p50</text>`, `<text x="${W - R + 15}" y="${ly + 24}">dotted: ${P99_BOUND_MS} ms</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
