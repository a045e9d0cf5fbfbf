/**
 * Dataset statistics (tools/datasets/analyze.py, reorganised): counts, video hours (each clip's
 * own fps, where the reference assumed 30), and histograms of duration, resolution, aspect ratio and
 * caption token length, printed as a table and drawn as an SVG chart converted to PNG by sharp.
 */
import sharp from 'sharp';
import { atomicWriteFile } from '@opensora/core';
import type { DatasetRow } from './csv.js';
import { approxTokenCount } from './text.js';

export interface HistogramBin {
  label: string;
  lo: number;
  hi: number;
  count: number;
}

export interface Histogram {
  title: string;
  bins: HistogramBin[];
  /** Rows that had no value for this histogram. */
  missing: number;
}

export interface ColumnSummary {
  count: number;
  min: number;
  max: number;
  mean: number;
  median: number;
}

export interface DatasetStats {
  rows: number;
  videos: number;
  images: number;
  /** Sum of num_frames / fps over videos with both. */
  videoSeconds: number;
  columns: Record<string, ColumnSummary>;
  histograms: { duration: Histogram; resolution: Histogram; aspectRatio: Histogram; tokens: Histogram };
}

export interface StatsOptions {
  /** Token counter for captions (default: `text_len` when present, else `approxTokenCount`). */
  countTokens?: (text: string) => number;
}

function histogram(title: string, edges: number[], labels: string[], values: Array<number | undefined>): Histogram {
  const bins = labels.map((label, i) => ({ label, lo: edges[i]!, hi: edges[i + 1]!, count: 0 }));
  let missing = 0;
  for (const v of values) {
    if (v === undefined || !Number.isFinite(v)) {
      missing++;
      continue;
    }
    let k = bins.findIndex((b) => v >= b.lo && v < b.hi);
    if (k < 0) k = v < bins[0]!.lo ? 0 : bins.length - 1;
    bins[k]!.count++;
  }
  return { title, bins, missing };
}

function summarise(values: number[]): ColumnSummary | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = v.length >> 1;
  return {
    count: v.length,
    min: v[0]!,
    max: v[v.length - 1]!,
    mean: v.reduce((a, b) => a + b, 0) / v.length,
    median: v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2,
  };
}

/** Named resolutions by pixel count (the reference's 144p..4k, 16:9 sizes). */
const RES_CLASSES: Array<[string, number]> = [
  ['144p', 144 * 256],
  ['240p', 240 * 426],
  ['360p', 360 * 640],
  ['480p', 480 * 854],
  ['720p', 720 * 1280],
  ['1080p', 1080 * 1920],
  ['4k', 2160 * 3840],
];

export function computeStats(rows: readonly DatasetRow[], options: StatsOptions = {}): DatasetStats {
  const isImage = (r: DatasetRow) => r.num_frames === 1 || /\.(jpe?g|png|ppm|bmp|pgm|tiff?|webp)$/i.test(r.path);
  const videos = rows.filter((r) => !isImage(r));
  const images = rows.length - videos.length;
  const dur = videos.map((r) => (typeof r.num_frames === 'number' && typeof r.fps === 'number' && r.fps > 0 ? r.num_frames / r.fps : undefined));
  const videoSeconds = dur.reduce<number>((a, d) => a + (d ?? 0), 0);
  const res = rows.map((r) => (typeof r.resolution === 'number' ? r.resolution : typeof r.height === 'number' && typeof r.width === 'number' ? r.height * r.width : undefined));
  const ar = rows.map((r) => (typeof r.aspect_ratio === 'number' ? r.aspect_ratio : typeof r.height === 'number' && typeof r.width === 'number' && r.width > 0 ? r.height / r.width : undefined));
  const count = options.countTokens ?? approxTokenCount;
  const tokens = rows.map((r) => (!options.countTokens && typeof r.text_len === 'number' ? r.text_len : typeof r.text === 'string' && r.text ? count(r.text) : undefined));
  // Resolution classes: each bin spans the geometric midpoints between neighbouring names.
  const resEdges = [0];
  for (let i = 0; i + 1 < RES_CLASSES.length; i++) resEdges.push(Math.sqrt(RES_CLASSES[i]![1] * RES_CLASSES[i + 1]![1]));
  resEdges.push(Infinity);
  const columns: Record<string, ColumnSummary> = {};
  for (const c of ['num_frames', 'height', 'width', 'aspect_ratio', 'fps', 'resolution', 'text_len', 'aes', 'flow', 'ocr', 'match']) {
    const s = summarise(rows.map((r) => r[c]).filter((v): v is number => typeof v === 'number'));
    if (s) columns[c] = s;
  }
  return {
    rows: rows.length,
    videos: videos.length,
    images,
    videoSeconds,
    columns,
    histograms: {
      duration: histogram('video duration (s)', [0, 1, 2, 4, 8, 16, 32, 64, Infinity], ['<1', '1-2', '2-4', '4-8', '8-16', '16-32', '32-64', '>=64'], dur),
      resolution: histogram('resolution (H*W)', resEdges, RES_CLASSES.map(([n]) => `~${n}`), res),
      aspectRatio: histogram('aspect ratio (H/W)', [0, 0.5, 0.65, 0.87, 1.15, 1.5, 2, Infinity], ['<0.5', '~0.56 16:9', '~0.75 4:3', '~1 square', '~1.33 3:4', '~1.78 9:16', '>=2'], ar),
      tokens: histogram('caption tokens', [0, 8, 16, 32, 64, 128, 201, Infinity], ['<8', '8-15', '16-31', '32-63', '64-127', '128-200', '>200'], tokens),
    },
  };
}

function fmtNum(x: number): string {
  if (Number.isInteger(x)) return String(x);
  return Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(4);
}

/** The stats as a plain-text table. */
export function formatStatsTable(s: DatasetStats): string {
  const lines: string[] = [];
  const hours = s.videoSeconds / 3600;
  lines.push(`rows ${s.rows}   videos ${s.videos}   images ${s.images}   video time ${s.videoSeconds.toFixed(1)} s (${hours.toFixed(3)} h)`);
  lines.push('');
  const cols = Object.entries(s.columns);
  if (cols.length) {
    lines.push(['column', 'count', 'min', 'median', 'mean', 'max'].map((h, i) => (i ? h.padStart(10) : h.padEnd(14))).join(''));
    for (const [c, v] of cols) lines.push(c.padEnd(14) + [v.count, v.min, v.median, v.mean, v.max].map((x) => fmtNum(x).padStart(10)).join(''));
    lines.push('');
  }
  for (const h of Object.values(s.histograms)) {
    const total = h.bins.reduce((a, b) => a + b.count, 0);
    const max = Math.max(1, ...h.bins.map((b) => b.count));
    lines.push(`${h.title}${h.missing ? ` (${h.missing} without a value)` : ''}`);
    for (const b of h.bins) {
      const pct = total ? ((100 * b.count) / total).toFixed(1) : '0.0';
      lines.push(`  ${b.label.padEnd(12)} ${String(b.count).padStart(7)} ${pct.padStart(6)}%  ${'#'.repeat(Math.round((30 * b.count) / max))}`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The four histograms as an SVG bar chart (2x2 panels). */
export function renderStatsSvg(s: DatasetStats, options: { width?: number; height?: number; title?: string } = {}): string {
  const W = options.width ?? 1000;
  const H = options.height ?? 700;
  const pw = W / 2;
  const ph = (H - 40) / 2;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  const title = options.title ?? `${s.rows} rows: ${s.videos} videos, ${s.images} images, ${(s.videoSeconds / 3600).toFixed(2)} h of video`;
  parts.push(`<text x="${W / 2}" y="26" font-size="18" text-anchor="middle" fill="#222">${esc(title)}</text>`);
  Object.values(s.histograms).forEach((h, k) => {
    const ox = (k % 2) * pw;
    const oy = 40 + Math.floor(k / 2) * ph;
    const left = ox + 50;
    const right = ox + pw - 20;
    const top = oy + 30;
    const bottom = oy + ph - 50;
    const max = Math.max(1, ...h.bins.map((b) => b.count));
    parts.push(`<text x="${ox + pw / 2}" y="${oy + 18}" font-size="14" text-anchor="middle" fill="#222">${esc(h.title)}</text>`);
    parts.push(`<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="#444"/>`);
    parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="#444"/>`);
    parts.push(`<text x="${left - 6}" y="${top + 4}" font-size="10" text-anchor="end" fill="#444">${max}</text>`);
    parts.push(`<text x="${left - 6}" y="${bottom}" font-size="10" text-anchor="end" fill="#444">0</text>`);
    const bw = (right - left) / h.bins.length;
    h.bins.forEach((b, i) => {
      const bh = ((bottom - top) * b.count) / max;
      const x = left + i * bw + bw * 0.1;
      parts.push(`<rect x="${x.toFixed(1)}" y="${(bottom - bh).toFixed(1)}" width="${(bw * 0.8).toFixed(1)}" height="${bh.toFixed(1)}" fill="#4a78c2"/>`);
      if (b.count) parts.push(`<text x="${(x + bw * 0.4).toFixed(1)}" y="${(bottom - bh - 3).toFixed(1)}" font-size="10" text-anchor="middle" fill="#222">${b.count}</text>`);
      const lx = x + bw * 0.4;
      parts.push(`<text x="${lx.toFixed(1)}" y="${bottom + 14}" font-size="10" text-anchor="end" transform="rotate(-30 ${lx.toFixed(1)} ${bottom + 14})" fill="#222">${esc(b.label)}</text>`);
    });
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Renders the stats chart to a PNG file (atomic write). */
export async function writeStatsPng(file: string, s: DatasetStats, options: { width?: number; height?: number; title?: string } = {}): Promise<void> {
  const png = await sharp(Buffer.from(renderStatsSvg(s, options))).png().toBuffer();
  await atomicWriteFile(file, png);
}
