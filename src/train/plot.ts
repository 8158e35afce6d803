import path from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic.js';

/** One epoch's row of metrics.jsonl (the trainer's keys plus the evaluation's). */
export interface EpochMetrics {
  epoch: number;
  loss: number;
  accuracy: number;
  [metric: string]: number;
}

interface Series {
  label: string;
  color: string;
  points: Array<[number, number]>;
}

const WIDTH = 960;
const HEIGHT = 420;
const PANEL = { top: 64, bottom: 56, left: 70, right: 24 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
// Keys of a row that are not curves of the accuracy panel.
const NOT_SCORES = new Set(['epoch', 'step', 'loss', 'lr', 'seconds', 'samples', 'eval_loss', 'gradNorm']);

const escapeXml = (s: string): string => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** About `count` round tick values covering [lo, hi]. */
function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    return niceTicks(lo - pad, hi + pad, count);
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.floor(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  if (ticks[ticks.length - 1] < hi) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

function formatTick(v: number, percent: boolean): string {
  if (percent) return `${Number((v * 100).toPrecision(6))}%`;
  if (v === 0) return '0';
  return Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

function panel(x0: number, w: number, title: string, series: Series[], epochs: number, percent: boolean, best?: { epoch: number; value: number }): string {
  const plotW = w - PANEL.left - PANEL.right;
  const plotH = HEIGHT - PANEL.top - PANEL.bottom;
  const left = x0 + PANEL.left;
  const values = series.flatMap((s) => s.points.map(([, y]) => y)).filter(Number.isFinite);
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (percent) { lo = Math.max(0, lo); hi = Math.min(1, hi); }
  if (!percent) lo = Math.min(0, lo); // losses read best from 0
  const yTicks = niceTicks(lo, hi);
  const yMin = yTicks[0];
  const yMax = yTicks[yTicks.length - 1];
  const xMax = Math.max(epochs, 2);
  const sx = (e: number) => left + ((e - 1) / (xMax - 1)) * plotW;
  const sy = (v: number) => PANEL.top + (1 - (v - yMin) / (yMax - yMin || 1)) * plotH;
  const out: string[] = [];
  out.push(`<text x="${left + plotW / 2}" y="${PANEL.top - 30}" text-anchor="middle" font-size="18" font-weight="bold">${escapeXml(title)}</text>`);
  for (const t of yTicks) {
    const y = sy(t).toFixed(1);
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="12" fill="#444">${formatTick(t, percent)}</text>`);
  }
  const xStep = Math.max(1, Math.ceil(epochs / 10));
  const xTicks: number[] = [];
  for (let e = 1; e <= epochs; e += xStep) xTicks.push(e);
  if (xTicks[xTicks.length - 1] !== epochs && (epochs - xTicks[xTicks.length - 1]) * 2 >= xStep) xTicks.push(epochs);
  for (const e of xTicks) {
    const x = sx(e).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${PANEL.top + plotH}" y2="${PANEL.top + plotH + 5}" stroke="#444"/>`);
    out.push(`<text x="${x}" y="${PANEL.top + plotH + 20}" text-anchor="middle" font-size="12" fill="#444">${e}</text>`);
  }
  out.push(`<rect x="${left}" y="${PANEL.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle" font-size="13" fill="#222">epoch</text>`);
  let legendX = left + 10;
  series.forEach((s) => {
    const pts = s.points.filter(([, y]) => Number.isFinite(y));
    if (pts.length > 1) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2.2" points="${pts.map(([e, y]) => `${sx(e).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [e, y] of pts) out.push(`<circle cx="${sx(e).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3.2" fill="${s.color}"/>`);
    const lx = legendX;
    legendX += 46 + 7.5 * s.label.length;
    out.push(`<line x1="${lx}" x2="${lx + 20}" y1="${PANEL.top - 10}" y2="${PANEL.top - 10}" stroke="${s.color}" stroke-width="3"/>`);
    out.push(`<text x="${lx + 26}" y="${PANEL.top - 10}" dominant-baseline="middle" font-size="12" fill="#222">${escapeXml(s.label)}</text>`);
  });
  if (best && Number.isFinite(best.value)) {
    const bx = sx(best.epoch);
    const by = sy(best.value);
    out.push(`<circle cx="${bx.toFixed(1)}" cy="${by.toFixed(1)}" r="6.5" fill="none" stroke="#111" stroke-width="1.6"/>`);
    const label = `best ${percent ? `${(best.value * 100).toFixed(2)}%` : best.value.toPrecision(4)} (epoch ${best.epoch})`;
    const anchor = bx > left + plotW * 0.6 ? 'end' : 'start';
    out.push(`<text x="${(bx + (anchor === 'end' ? -10 : 10)).toFixed(1)}" y="${(by + (by < PANEL.top + 24 ? 20 : -12)).toFixed(1)}" text-anchor="${anchor}" font-size="12" font-weight="bold" fill="#111" stroke="#fff" stroke-width="4" paint-order="stroke">${escapeXml(label)}</text>`);
  }
  return out.join('\n');
}

/** The curves as a standalone SVG: training loss on the left, evaluation scores on the right. */
export function curvesSvg(rows: EpochMetrics[], title = 'Training curves'): string {
  const epochs = Math.max(1, ...rows.map((r) => r.epoch));
  const lossSeries: Series[] = [{ label: 'train loss', color: COLORS[0], points: rows.map((r) => [r.epoch, r.loss]) }];
  if (rows.some((r) => Number.isFinite(r.eval_loss))) lossSeries.push({ label: 'eval loss', color: COLORS[1], points: rows.map((r) => [r.epoch, r.eval_loss]) });
  // Accuracy, then other scores that live in [0, 1] (e.g. macro-F1), at most four curves.
  const scoreKeys = ['accuracy', ...new Set(rows.flatMap((r) => Object.keys(r)))]
    .filter((k, i, all) => all.indexOf(k) === i && !NOT_SCORES.has(k))
    .filter((k) => rows.every((r) => r[k] === undefined || (typeof r[k] === 'number' && r[k] >= 0 && r[k] <= 1)))
    .slice(0, 4);
  const scoreSeries: Series[] = scoreKeys.map((k, i) => ({
    label: k === 'accuracy' ? 'eval accuracy' : k,
    color: COLORS[(i + 2) % COLORS.length],
    points: rows.filter((r) => r[k] !== undefined).map((r) => [r.epoch, r[k]]),
  }));
  let best: { epoch: number; value: number } | undefined;
  for (const r of rows) if (Number.isFinite(r.accuracy) && (!best || r.accuracy > best.value)) best = { epoch: r.epoch, value: r.accuracy };
  const half = WIDTH / 2;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="${FONT}">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="18" text-anchor="middle" font-size="13" fill="#555">${escapeXml(title)}</text>`,
    panel(0, half, 'Loss', lossSeries, epochs, false),
    panel(half, half, 'Accuracy', scoreSeries, epochs, true, best),
    '</svg>',
  ].join('\n');
}

function curvesHtml(rows: EpochMetrics[], svg: string, title: string): string {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(5)) : '');
  const table = [
    `<tr>${keys.map((k) => `<th>${escapeXml(k)}</th>`).join('')}</tr>`,
    ...rows.map((r) => `<tr>${keys.map((k) => `<td>${cell(r[k])}</td>`).join('')}</tr>`),
  ].join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeXml(title)}</title>
<style>body{font-family:${FONT};margin:24px;color:#222}table{border-collapse:collapse;margin-top:16px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}</style></head>
<body><h1 style="font-size:20px">${escapeXml(title)}</h1>
${svg}
<table>
${table}
</table>
</body></html>
`;
}

/** Writes DIR/curves.html (inline SVG and the metrics table) and DIR/curves.png. */
export async function writeCurves(dir: string, rows: EpochMetrics[], title = 'Training curves'): Promise<{ html: string; png: string }> {
  const svg = curvesSvg(rows, title);
  const html = path.join(dir, 'curves.html');
  const png = path.join(dir, 'curves.png');
  await writeFileAtomic(html, curvesHtml(rows, svg, title));
  // librsvg (inside sharp) renders the SVG; 1.5x density for a crisp image.
  const image = await sharp(Buffer.from(svg), { density: 108 }).png().toBuffer();
  await writeFileAtomic(png, image);
  return { html, png };
}
