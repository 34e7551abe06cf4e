// Hand-written SVG line plots: y against x on a log-scaled x axis, the y
// axis linear or log-scaled, one polyline per series and a legend.

export interface Series {
  label: string;
  colour: string;
  points: Array<{ x: number; y: number }>;
  /** Dashed line and smaller marks (a second figure of the same series). */
  dashed?: boolean;
}

export interface Plot {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** 'log': from `yFloor` to the power of ten above the largest value; 'linear': from 0 to a round ceiling. */
  yScale: 'linear' | 'log';
  yFloor?: number;
  /** The x axis spans at least this range. */
  xSpan: [number, number];
  width: number;
  /** A dotted horizontal line at this y (a bound), with its note. */
  bound?: { y: number; note: string };
  /** Lines of text under the legend. */
  notes?: string[];
}

export const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The smallest of 1, 2, 2.5, 5, 10 × a power of ten at or above `v`. */
export function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function svgPlot(p: Plot): string {
  const W = p.width, H = p.yScale === 'log' ? 360 : 340, L = 60, R = p.yScale === 'log' ? 220 : 200, T = 40, B = 50;
  const xs = p.series.flatMap((s) => s.points.map((q) => q.x));
  const ys = p.series.flatMap((s) => s.points.map((q) => q.y));
  const lo = Math.log10(Math.min(...xs, p.xSpan[0])), hi = Math.log10(Math.max(...xs, p.xSpan[1]));
  const x = (v: number): number => L + ((Math.log10(v) - lo) / Math.max(1e-9, hi - lo)) * (W - L - R);
  const floor = p.yFloor ?? 0.1;
  const yLo = Math.log10(floor);
  const yHi = Math.max(2, Math.ceil(Math.log10(Math.max(1, ...ys))));
  const linMax = niceCeil(Math.max(1, ...ys));
  const y = (v: number): number =>
    p.yScale === 'log' ? H - B - ((Math.log10(Math.max(v, floor)) - yLo) / (yHi - yLo)) * (H - T - B) : H - B - (v / linMax) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${(W - R) / 2 + L / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(p.title)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">${escapeXml(p.xLabel)}</text>`,
    `<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">${escapeXml(p.yLabel)}</text>`,
  ];
  const ticks = p.yScale === 'log' ? Array.from({ length: yHi - yLo + 1 }, (_, i) => 10 ** (yLo + i)) : Array.from({ length: 6 }, (_, i) => (linMax * i) / 5);
  for (const v of ticks) out.push(`<line x1="${L}" y1="${y(v)}" x2="${W - R}" y2="${y(v)}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v < 10 ? v.toFixed(1) : v.toFixed(0)}</text>`);
  if (p.bound) out.push(`<line x1="${L}" y1="${y(p.bound.y)}" x2="${W - R}" y2="${y(p.bound.y)}" stroke="#999" stroke-dasharray="2,3"/>`);
  for (const v of [...new Set(xs)].sort((a, b) => a - b)) out.push(`<text x="${x(v)}" y="${H - B + 16}" text-anchor="middle">${v}</text>`, `<line x1="${x(v)}" y1="${H - B}" x2="${x(v)}" y2="${H - B + 4}" stroke="black"/>`);
  let row = 0;
  for (const s of p.series) {
    const dash = s.dashed ? ' stroke-dasharray="5,4"' : '';
    if (s.points.length > 0) out.push(`<polyline fill="none" stroke="${s.colour}" stroke-width="2"${dash} points="${s.points.map((q) => `${x(q.x).toFixed(1)},${y(q.y).toFixed(1)}`).join(' ')}"/>`);
    for (const q of s.points) out.push(`<circle cx="${x(q.x).toFixed(1)}" cy="${y(q.y).toFixed(1)}" r="${s.dashed ? 2.5 : 3.5}" fill="${s.colour}"/>`);
    if (s.dashed) continue;
    const ly = T + 10 + row++ * 20;
    out.push(`<line x1="${W - R + 15}" y1="${ly}" x2="${W - R + 35}" y2="${ly}" stroke="${s.colour}" stroke-width="2"/>`, `<text x="${W - R + 40}" y="${ly + 4}">${escapeXml(s.label)}</text>`);
  }
  const notes = [...(p.notes ?? []), ...(p.bound ? [p.bound.note] : [])];
  notes.forEach((n, i) => out.push(`<text x="${W - R + 15}" y="${T + 10 + row * 20 + 10 + 4 + i * 20}">${escapeXml(n)}</text>`));
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
