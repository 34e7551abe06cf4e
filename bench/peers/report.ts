// Tables with the Switchboard / peer ratio, and the hand-written SVG plot of
// p99 latency against rate (log-scaled rate axis, linear latency axis).
import type { BroadcastResult, IdleResult, LatencyResult } from './measure.js';
import { type Kind, KINDS, LABEL } from './servers.js';

export interface KindResult {
  kind: Kind;
  idle?: IdleResult;
  broadcast?: BroadcastResult;
  latency?: LatencyResult[];
}

export const fmt = (v: number, digits = 1): string => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');

export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** Switchboard's figure over the peer's: above 1 means Switchboard uses more (or takes longer). */
const ratio = (sb: number | undefined, peer: number | undefined): string =>
  sb === undefined || peer === undefined || !Number.isFinite(sb / peer) ? 'n/a' : `${(sb / peer).toFixed(2)}×`;

export function idleTable(results: KindResult[]): string {
  const sb = results.find((r) => r.kind === 'switchboard')?.idle;
  return table(
    ['server', 'connections', 'open s', 'heap B/conn', 'RSS B/conn', 'SB/peer heap', 'SB/peer RSS', 'SB/peer open'],
    results.flatMap((r) =>
      r.idle
        ? [[LABEL[r.kind], String(r.idle.connections), fmt(r.idle.openSeconds, 2), fmt(r.idle.heapPerConnection, 0), fmt(r.idle.rssPerConnection, 0),
            ratio(sb?.heapPerConnection, r.idle.heapPerConnection), ratio(sb?.rssPerConnection, r.idle.rssPerConnection), ratio(sb?.openSeconds, r.idle.openSeconds)]]
        : [],
    ),
  );
}

export function broadcastTable(results: KindResult[]): string {
  const sb = results.find((r) => r.kind === 'switchboard')?.broadcast;
  return table(
    ['server', 'clients × msgs', 'rate (achieved)', 'delivered / expected', 'lost', 'CPU ms/1000 (A)', 'CPU ms/1000 (B)', 'SB/peer CPU (A)'],
    results.flatMap((r) => {
      const b = r.broadcast;
      return b
        ? [[LABEL[r.kind], `${b.clients} × ${b.messages}`, `${b.rate} (${fmt(b.achievedRate, 0)})`, `${b.delivered} / ${b.expected}`, String(b.lost),
            fmt(b.cpuPer1000, 1), r.kind === 'ws' ? '–' : fmt(b.cpuPer1000B, 1), ratio(sb?.cpuPer1000, b.cpuPer1000)]]
        : [];
    }),
  );
}

export function latencyTable(results: KindResult[]): string {
  const sb = results.find((r) => r.kind === 'switchboard')?.latency ?? [];
  return table(
    ['server', 'rate/s (achieved)', 'sent', 'lost', 'p50 ms', 'p99 ms', 'max ms', 'SB/peer p50', 'SB/peer p99'],
    results.flatMap((r) =>
      (r.latency ?? []).map((l) => {
        const s = sb.find((x) => x.rate === l.rate);
        return [LABEL[r.kind], `${l.rate} (${fmt(l.achievedRate, 0)})`, String(l.sent), String(l.lost + l.failedPublishes), fmt(l.p50, 2), fmt(l.p99, 2), fmt(l.max, 1), ratio(s?.p50, l.p50), ratio(s?.p99, l.p99)];
      }),
    ),
  );
}

export const COLOURS: Record<Kind, string> = { switchboard: '#d62728', socketio: '#1f77b4', ws: '#2ca02c' };

/** p99 latency (ms) against publication rate, one polyline per server. */
export function svgPlot(results: KindResult[], title: string): string {
  const W = 560, H = 340, L = 60, R = 200, T = 40, B = 50;
  const series = KINDS.map((k) => ({ kind: k, pts: (results.find((r) => r.kind === k)?.latency ?? []).filter((l) => Number.isFinite(l.p99)) }));
  const rates = series.flatMap((s) => s.pts.map((p) => p.rate));
  const maxY = Math.max(1, ...series.flatMap((s) => s.pts.map((p) => p.p99)));
  const niceMax = niceCeil(maxY);
  const lo = Math.log10(Math.min(...rates, 100)), hi = Math.log10(Math.max(...rates, 1000));
  const x = (rate: number): number => L + ((Math.log10(rate) - lo) / Math.max(1e-9, hi - lo)) * (W - L - R);
  const y = (ms: number): number => H - B - (ms / niceMax) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - R / 2}" y="20" text-anchor="middle" font-size="14">${escape(title)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">targeted messages per second (log scale)</text>`,
    `<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">p99 latency, ms</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (niceMax * i) / 5;
    out.push(`<line x1="${L}" y1="${y(v)}" x2="${W - R}" y2="${y(v)}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${fmtTick(v)}</text>`);
  }
  for (const r of [...new Set(rates)].sort((a, b) => a - b)) out.push(`<text x="${x(r)}" y="${H - B + 16}" text-anchor="middle">${r}</text>`, `<line x1="${x(r)}" y1="${H - B}" x2="${x(r)}" y2="${H - B + 4}" stroke="black"/>`);
  series.forEach((s, i) => {
    const c = COLOURS[s.kind];
    if (s.pts.length > 0) out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${s.pts.map((p) => `${x(p.rate).toFixed(1)},${y(p.p99).toFixed(1)}`).join(' ')}"/>`);
    for (const p of s.pts) out.push(`<circle cx="${x(p.rate).toFixed(1)}" cy="${y(p.p99).toFixed(1)}" r="3.5" fill="${c}"/>`);
    const ly = T + 10 + i * 20;
    out.push(`<line x1="${W - R + 15}" y1="${ly}" x2="${W - R + 35}" y2="${ly}" stroke="${c}" stroke-width="2"/>`, `<text x="${W - R + 40}" y="${ly + 4}">${escape(LABEL[s.kind])}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export const fmtTick = (v: number): string => (v >= 10 ? v.toFixed(0) : v.toFixed(1));
export const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
