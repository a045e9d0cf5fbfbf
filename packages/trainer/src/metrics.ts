/**
 * Training metrics: a JSONL log (one JSON object per line, appended and fsynced per line so that
 * a killed run keeps every line it logged), and a loss-curve PNG drawn from it (an SVG rendered
 * by sharp).
 */
import { appendFileSync, closeSync, existsSync, fsyncSync, openSync, readFileSync } from 'node:fs';
import { atomicWriteFile } from '@opensora/core';
import sharp from 'sharp';

export interface MetricRecord {
  /** 'train' for a logging window, 'skip' for a non-finite step, 'ckpt' for a save, 'stage' ... */
  event: string;
  global_step: number;
  [key: string]: unknown;
}

export class MetricsLog {
  constructor(readonly file: string) {}

  append(record: MetricRecord): void {
    const line = JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n';
    const fd = openSync(this.file, 'a');
    try {
      appendFileSync(fd, line);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  read(): MetricRecord[] {
    return readJsonl(this.file);
  }

  /**
   * Drops records past `globalStep` (left by a run that was killed after its last checkpoint),
   * so that a resumed run's log reads as one uninterrupted run.
   */
  async truncateAfter(globalStep: number): Promise<number> {
    if (!existsSync(this.file)) return 0;
    const all = this.read();
    const kept = all.filter((r) => !(typeof r.global_step === 'number' && r.global_step > globalStep));
    if (kept.length !== all.length) {
      await atomicWriteFile(this.file, kept.map((r) => JSON.stringify(r) + '\n').join(''));
    }
    return all.length - kept.length;
  }
}

/** Reads a JSONL file; a torn last line (a crash mid-write) is ignored. */
export function readJsonl(file: string): MetricRecord[] {
  if (!existsSync(file)) return [];
  const out: MetricRecord[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as MetricRecord);
    } catch {
      /* torn line */
    }
  }
  return out;
}

export interface CurveSeries {
  name: string;
  points: Array<[number, number]>;
  color: string;
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const span = hi - lo;
  const step0 = span / n;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** An SVG line chart of one or more series (x = global step). */
export function renderCurveSvg(series: CurveSeries[], options: { title?: string; width?: number; height?: number; yLabel?: string } = {}): string {
  const W = options.width ?? 800;
  const H = options.height ?? 450;
  const m = { l: 70, r: 20, t: 40, b: 50 };
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const x0 = xs.length ? Math.min(...xs) : 0;
  let x1 = xs.length ? Math.max(...xs) : 1;
  let y0 = ys.length ? Math.min(...ys) : 0;
  let y1 = ys.length ? Math.max(...ys) : 1;
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<g font-family="DejaVu Sans, Arial, sans-serif" font-size="12" fill="#333">`);
  for (const t of niceTicks(y0, y1)) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.l - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end">${t}</text>`);
  }
  for (const t of niceTicks(x0, x1)) {
    parts.push(`<line x1="${sx(t).toFixed(1)}" x2="${sx(t).toFixed(1)}" y1="${m.t}" y2="${H - m.b}" stroke="#f0f0f0"/>`);
    parts.push(`<text x="${sx(t).toFixed(1)}" y="${H - m.b + 18}" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">global step</text>`);
  parts.push(`<text x="16" y="${(m.t + H - m.b) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(m.t + H - m.b) / 2})">${esc(options.yLabel ?? 'loss')}</text>`);
  if (options.title) parts.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${esc(options.title)}</text>`);
  series.forEach((s, i) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (pts.length) {
      const d = pts.map(([x, y], j) => `${j ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"/>`);
      if (pts.length === 1) parts.push(`<circle cx="${sx(pts[0]![0]).toFixed(1)}" cy="${sy(pts[0]![1]).toFixed(1)}" r="3" fill="${s.color}"/>`);
    }
    parts.push(`<line x1="${W - m.r - 150}" x2="${W - m.r - 130}" y1="${m.t + 16 + i * 16}" y2="${m.t + 16 + i * 16}" stroke="${s.color}" stroke-width="2"/>`);
    parts.push(`<text x="${W - m.r - 124}" y="${m.t + 20 + i * 16}">${esc(s.name)}</text>`);
  });
  parts.push('</g></svg>');
  return parts.join('\n');
}

/** Series for the loss curve from JSONL records: the logged loss (window mean) and mse/vb when present. */
export function lossSeries(records: MetricRecord[]): CurveSeries[] {
  const train = records.filter((r) => r.event === 'train' && typeof r.loss === 'number');
  const series: CurveSeries[] = [{ name: 'loss', color: '#1f77b4', points: train.map((r) => [r.global_step, r.loss as number]) }];
  if (train.some((r) => typeof r.mse === 'number')) series.push({ name: 'mse', color: '#ff7f0e', points: train.filter((r) => typeof r.mse === 'number').map((r) => [r.global_step, r.mse as number]) });
  if (train.some((r) => typeof r.vb === 'number')) series.push({ name: 'vb', color: '#2ca02c', points: train.filter((r) => typeof r.vb === 'number').map((r) => [r.global_step, r.vb as number]) });
  return series;
}

/** Draws the loss curve of a JSONL log into a PNG (atomically). Returns the number of points. */
export async function writeLossCurvePng(jsonlFile: string, pngFile: string, title = 'training loss'): Promise<number> {
  const records = readJsonl(jsonlFile);
  const series = lossSeries(records);
  const svg = renderCurveSvg(series, { title });
  const png = await sharp(Buffer.from(svg)).png().toBuffer();
  await atomicWriteFile(pngFile, png);
  return series[0]!.points.length;
}
