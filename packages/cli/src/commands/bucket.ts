/**
 * `opensora bucket stats CSV`: how the rows of a dataset CSV land in the buckets of a bucket config
 * (a file, or a training preset's), and the steps per epoch, with the sampler the trainer uses
 * (@opensora/bucket's VariableVideoBatchSampler, drop_last as in training). Prints the tables of
 * formatBucketStats and, with --png, draws a resolution x num_frames heatmap (SVG rendered by sharp).
 */
import path from 'node:path';
import sharp from 'sharp';
import { atomicWriteFile, loadConfigFile } from '@opensora/core';
import {
  Bucket,
  OPENSORA_V1_1_BUCKET_CONFIGS,
  VariableVideoBatchSampler,
  formatBucketStats,
  type BucketConfig,
  type BucketStats,
  type CustomResolution,
} from '@opensora/bucket';
import { readDatasetCsv } from '@opensora/data';
import { UsageError } from '../errors.js';
import type { CliIO } from '../program.js';

/** Seed of the reference's training configs (and of this port's presets). */
const DEFAULT_SEED = 42;
/** frame_interval of the reference's training configs. */
const OFFICIAL_FRAME_INTERVAL = 3;

export interface BucketSource {
  /** Where the config came from, for the report. */
  name: string;
  config: BucketConfig;
  resolutions: Record<string, CustomResolution>;
  frameInterval: number;
  seed: number;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A config file is either a bare bucket config `{ [resolution]: { [T]: [keepProb, batchSize] } }` or a
 * training config holding one (`bucketConfig` / `bucket_config`, with `customResolutions`,
 * `dataset.frameInterval` and `seed` when present).
 */
export function bucketSourceFromValue(value: unknown, name: string): BucketSource {
  if (!isObj(value)) throw new UsageError(`${name}: expected an object (a bucket config, or a training config with bucketConfig)`);
  const inner = value.bucketConfig ?? value.bucket_config;
  if (inner === undefined) return { name, config: value as BucketConfig, resolutions: {}, frameInterval: 1, seed: DEFAULT_SEED };
  if (!isObj(inner)) throw new UsageError(`${name}: bucketConfig must be an object { [resolution]: { [numFrames]: [keepProb, batchSize] } }`);
  const res = value.customResolutions ?? value.custom_resolutions ?? {};
  if (!isObj(res)) throw new UsageError(`${name}: customResolutions must be an object { [name]: { pixels, ratios } }`);
  const dataset = isObj(value.dataset) ? value.dataset : {};
  const fi = dataset.frameInterval ?? dataset.frame_interval ?? value.frameInterval ?? value.frame_interval;
  const seed = value.seed;
  return {
    name,
    config: inner as BucketConfig,
    resolutions: res as Record<string, CustomResolution>,
    frameInterval: typeof fi === 'number' ? fi : 1,
    seed: typeof seed === 'number' && Number.isSafeInteger(seed) && seed >= 0 ? seed : DEFAULT_SEED,
  };
}

/** The bucket config of a preset: the reference's (bucket package) or a trainer preset (tiny ones). */
export async function bucketSourceFromPreset(preset: string): Promise<BucketSource> {
  const official = OPENSORA_V1_1_BUCKET_CONFIGS as Readonly<Record<string, BucketConfig>>;
  if (Object.hasOwn(official, preset)) {
    return { name: `preset '${preset}'`, config: official[preset]!, resolutions: {}, frameInterval: OFFICIAL_FRAME_INTERVAL, seed: DEFAULT_SEED };
  }
  const trainer = await import('@opensora/trainer');
  if (!trainer.TRAIN_PRESET_NAMES.includes(preset)) {
    const names = [...new Set([...Object.keys(official), ...trainer.TRAIN_PRESET_NAMES])];
    throw new UsageError(`unknown preset '${preset}'; use one of ${names.join(', ')}, or --bucket-config <file>`);
  }
  const input = trainer.presetInput(preset) as unknown as Obj;
  return bucketSourceFromValue(input, `preset '${preset}'`);
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Heatmap of samples per (resolution, num_frames) as SVG: rows are resolutions (pixels descending), columns frame counts. */
export function renderBucketHeatmapSvg(bucket: Bucket, stats: BucketStats, title: string): string {
  const resolutions = bucket.config.map((r) => r.resolution);
  const frames = [...new Set(bucket.config.flatMap((r) => r.frames.map((f) => f.numFrames)))].sort((a, b) => a - b);
  const cell = new Map<string, { samples: number; batches: number }>();
  for (const e of stats.byResolutionFrames) cell.set(`${e.resolution}\u0000${e.numFrames}`, { samples: e.samples, batches: e.batches });
  const max = Math.max(1, ...stats.byResolutionFrames.map((e) => e.samples));
  const cw = 96;
  const ch = 44;
  const left = 90;
  const top = 70;
  const W = left + frames.length * cw + 30;
  const H = top + resolutions.length * ch + 50;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="${W / 2}" y="24" font-size="15" text-anchor="middle" fill="#222">${esc(title)}</text>`);
  parts.push(`<text x="${left + (frames.length * cw) / 2}" y="${top - 28}" font-size="12" text-anchor="middle" fill="#444">num_frames (T)</text>`);
  frames.forEach((t, j) => parts.push(`<text x="${left + j * cw + cw / 2}" y="${top - 8}" font-size="12" text-anchor="middle" fill="#222">${t}</text>`));
  resolutions.forEach((res, i) => {
    const y = top + i * ch;
    parts.push(`<text x="${left - 8}" y="${y + ch / 2 + 4}" font-size="12" text-anchor="end" fill="#222">${esc(res)}</text>`);
    const entry = bucket.config.find((r) => r.resolution === res)!;
    frames.forEach((t, j) => {
      const x = left + j * cw;
      const f = entry.frames.find((e) => e.numFrames === t);
      if (!f || f.keepProb === 0) {
        parts.push(`<rect x="${x + 1}" y="${y + 1}" width="${cw - 2}" height="${ch - 2}" fill="#eeeeee"/>`);
        parts.push(`<text x="${x + cw / 2}" y="${y + ch / 2 + 4}" font-size="11" text-anchor="middle" fill="#999">${f ? 'p=0' : '-'}</text>`);
        return;
      }
      const v = cell.get(`${res}\u0000${t}`) ?? { samples: 0, batches: 0 };
      const a = v.samples > 0 ? 0.12 + 0.88 * Math.sqrt(v.samples / max) : 0;
      const rgb = [Math.round(255 - a * (255 - 30)), Math.round(255 - a * (255 - 90)), Math.round(255 - a * (255 - 170))];
      const fg = a > 0.55 ? '#ffffff' : '#222222';
      parts.push(`<rect x="${x + 1}" y="${y + 1}" width="${cw - 2}" height="${ch - 2}" fill="rgb(${rgb.join(',')})" stroke="#c8c8c8"/>`);
      parts.push(`<text x="${x + cw / 2}" y="${y + 19}" font-size="13" text-anchor="middle" fill="${fg}">${v.samples}</text>`);
      parts.push(`<text x="${x + cw / 2}" y="${y + 34}" font-size="10" text-anchor="middle" fill="${fg}">${v.batches} batch${v.batches === 1 ? '' : 'es'} of ${f.batchSize ?? 1}</text>`);
    });
  });
  parts.push(
    `<text x="${W / 2}" y="${H - 18}" font-size="12" text-anchor="middle" fill="#444">${esc(`${stats.assigned} of ${stats.numRows} rows in buckets, ${stats.unassigned} without one; ${stats.numSteps} steps per epoch per rank (${stats.numReplicas} rank(s))`)}</text>`,
  );
  parts.push('</svg>');
  return parts.join('\n');
}

/** Renders the heatmap to a PNG file (atomic write). */
export async function writeBucketHeatmapPng(file: string, bucket: Bucket, stats: BucketStats, title: string): Promise<void> {
  const png = await sharp(Buffer.from(renderBucketHeatmapSvg(bucket, stats, title))).png().toBuffer();
  await atomicWriteFile(file, png);
}

/** Bucket package errors about the user's input become usage errors (exit 2). */
function asUsage(e: unknown, where: string): never {
  const code = (e as { code?: unknown }).code;
  if (e instanceof Error && typeof code === 'string' && ['E_BUCKET_CONFIG', 'E_BUCKET_RESOLUTION', 'E_BUCKET_ARG', 'E_BUCKET_DATA'].includes(code)) {
    throw new UsageError(`${where}: ${e.message}`);
  }
  throw e;
}

/** Runs `opensora bucket stats <csv>` with commander's parsed options. */
export async function runBucketStats(csv: string, opts: Record<string, unknown>, global: { backend?: string }, io: CliIO): Promise<void> {
  void global;
  const file = typeof opts.bucketConfig === 'string' ? opts.bucketConfig : undefined;
  const preset = typeof opts.preset === 'string' ? opts.preset : 'stage2';
  const src = file ? bucketSourceFromValue(await loadConfigFile(file), file) : await bucketSourceFromPreset(preset);
  const frameInterval = typeof opts.frameInterval === 'number' ? opts.frameInterval : src.frameInterval;
  const seed = typeof opts.seed === 'number' ? opts.seed : src.seed;
  const numReplicas = typeof opts.numReplicas === 'number' ? opts.numReplicas : 1;
  if (!(frameInterval >= 1)) throw new UsageError(`--frame-interval must be at least 1, got ${frameInterval}`);
  if (!(seed >= 0)) throw new UsageError(`--seed must not be negative, got ${seed}`);
  if (!(numReplicas >= 1)) throw new UsageError(`--num-replicas must be at least 1, got ${numReplicas}`);

  const rows = await readDatasetCsv(csv, { requiredColumns: ['num_frames', 'height', 'width'] });
  const n = rows.length;
  const numFrames = new Float64Array(n);
  const height = new Float64Array(n);
  const width = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    for (const c of ['num_frames', 'height', 'width'] as const) {
      if (typeof r[c] !== 'number') {
        throw new UsageError(`${csv}: row ${i + 1} (${r.path}) has no ${c}; run 'opensora data info' on the CSV first`);
      }
    }
    numFrames[i] = r.num_frames!;
    height[i] = r.height!;
    width[i] = r.width!;
  }

  let bucket: Bucket;
  let stats: BucketStats;
  try {
    bucket = new Bucket(src.config, { resolutions: src.resolutions });
  } catch (e) {
    asUsage(e, src.name);
  }
  try {
    const sampler = new VariableVideoBatchSampler({ numFrames, height, width }, bucket, { seed, frameInterval, numReplicas, dropLast: true, shuffle: true });
    stats = sampler.bucketStats();
  } catch (e) {
    asUsage(e, csv);
  }
  io.stdout(`bucket config: ${src.name}; ${bucket.numBucket} buckets; frame interval ${frameInterval}; seed ${seed}; drop last (as in training)\n\n`);
  io.stdout(formatBucketStats(stats) + '\n');
  io.stdout(`\nsteps per epoch: ${stats.numSteps}\n`);
  const png = typeof opts.png === 'string' ? path.resolve(opts.png) : undefined;
  if (png) {
    await writeBucketHeatmapPng(png, bucket, stats, `${path.basename(csv)}: samples per bucket, ${src.name}`);
    io.stdout(`wrote ${png}\n`);
  }
}
