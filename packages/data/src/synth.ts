/**
 * Seeded synthetic dataset: coloured shapes moving in named directions over coloured backgrounds,
 * at several sizes, aspect ratios, lengths and frame rates, some videos with hard cuts between
 * scenes, with exact captions ("a red circle moving left on a blue background"). Written as real
 * H.264 mp4 files (libx264 through fluent-ffmpeg) and PNG images (sharp), plus a dataset CSV.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { Rng, assertArg } from '@opensora/core';
import { ffmpegCommand, type BinaryOptions } from './binaries.js';
import { writeDatasetCsv, type DatasetRow } from './csv.js';
import { MediaError } from './errors.js';

/** Named colours (sRGB), chosen far apart in hue or value so that every pair is easy to tell apart. */
export const SYNTH_COLORS = {
  red: [220, 30, 30],
  green: [30, 170, 50],
  blue: [30, 60, 220],
  yellow: [245, 215, 30],
  purple: [140, 40, 190],
  orange: [245, 130, 20],
  white: [245, 245, 245],
  black: [15, 15, 15],
  cyan: [30, 200, 215],
  pink: [245, 120, 190],
} as const satisfies Record<string, readonly [number, number, number]>;
export type SynthColor = keyof typeof SYNTH_COLORS;
export const SYNTH_COLOR_NAMES = Object.keys(SYNTH_COLORS) as SynthColor[];

export const SYNTH_SHAPES = ['circle', 'square', 'triangle', 'diamond'] as const;
export type SynthShape = (typeof SYNTH_SHAPES)[number];

/** Direction name -> unit motion [dx, dy] in image coordinates (y grows downwards). */
export const SYNTH_DIRECTIONS = {
  left: [-1, 0],
  right: [1, 0],
  up: [0, -1],
  down: [0, 1],
} as const satisfies Record<string, readonly [number, number]>;
export type SynthDirection = keyof typeof SYNTH_DIRECTIONS;
export const SYNTH_DIRECTION_NAMES = Object.keys(SYNTH_DIRECTIONS) as SynthDirection[];

export interface SynthScene {
  /** First frame (inclusive) and end frame (exclusive) in the clip. */
  start: number;
  end: number;
  shape: SynthShape;
  color: SynthColor;
  /** `null` for images (no motion). */
  direction: SynthDirection | null;
  background: SynthColor;
  caption: string;
}

export interface SynthItem {
  path: string;
  kind: 'video' | 'image';
  height: number;
  width: number;
  numFrames: number;
  fps: number;
  scenes: SynthScene[];
  /** Frame indices where a new scene starts (hard cuts). */
  cuts: number[];
  caption: string;
}

export interface SynthOptions extends BinaryOptions {
  outDir: string;
  seed?: number;
  numVideos?: number;
  numImages?: number;
  /** (H, W) choices, all even (H.264 4:2:0 needs even sizes). */
  sizes?: Array<[number, number]>;
  imageSizes?: Array<[number, number]>;
  /** Frame counts to choose from (per video; a video with cuts splits its length into scenes). */
  lengths?: number[];
  fps?: number[];
  /** Fraction of videos that have at least one hard cut (default 0.25). */
  cutFraction?: number;
  /** Number of scenes of a video with cuts (default 2). */
  scenesPerCut?: number;
  /** Shortest scene (frames) in a video with cuts (default 4). */
  minSceneFrames?: number;
  /** Folder for the media, relative to outDir (default 'media'). */
  mediaDir?: string;
  csvName?: string;
  /** x264 CRF (default 18) and preset (default 'ultrafast'). */
  crf?: number;
  preset?: string;
  /** Parallel encoder processes (default 4). */
  concurrency?: number;
  /** Restrict the vocabulary (defaults: all). */
  colors?: SynthColor[];
  shapes?: SynthShape[];
  directions?: SynthDirection[];
}

export interface SynthResult {
  csvPath: string;
  rows: DatasetRow[];
  items: SynthItem[];
}

/** "a red circle moving left on a blue background"; images drop the motion. */
export function synthCaption(s: Pick<SynthScene, 'shape' | 'color' | 'direction' | 'background'>): string {
  const motion = s.direction ? ` moving ${s.direction}` : '';
  return `${article(s.color)} ${s.color} ${s.shape}${motion} on ${article(s.background)} ${s.background} background`;
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? 'an' : 'a';
}

/** Caption of a multi-scene clip: the scenes' captions joined with ", then ". */
export function joinSceneCaptions(captions: string[]): string {
  return captions.join(', then ');
}

/** Parses a synthetic caption back into its parts (null when it is not one). */
export function parseSynthCaption(caption: string): Array<Pick<SynthScene, 'shape' | 'color' | 'direction' | 'background'>> | null {
  const parts = caption.split(', then ');
  const out: Array<Pick<SynthScene, 'shape' | 'color' | 'direction' | 'background'>> = [];
  const re = /^an? (\w+) (\w+)(?: moving (\w+))? on an? (\w+) background$/;
  for (const p of parts) {
    const m = re.exec(p.trim());
    if (!m) return null;
    const [, color, shape, direction, background] = m;
    if (!(color! in SYNTH_COLORS) || !(background! in SYNTH_COLORS) || !(SYNTH_SHAPES as readonly string[]).includes(shape!)) return null;
    if (direction !== undefined && !(direction in SYNTH_DIRECTIONS)) return null;
    out.push({ color: color as SynthColor, shape: shape as SynthShape, direction: (direction as SynthDirection | undefined) ?? null, background: background as SynthColor });
  }
  return out;
}

/** Renders one RGB frame of a scene at progress `p` in [0, 1] into `out` (H*W*3). */
export function renderSynthFrame(
  out: Uint8Array,
  width: number,
  height: number,
  scene: Pick<SynthScene, 'shape' | 'color' | 'direction' | 'background'>,
  p: number,
  offset = 0,
): void {
  const bg = SYNTH_COLORS[scene.background];
  const fg = SYNTH_COLORS[scene.color];
  out[0] = bg[0];
  out[1] = bg[1];
  out[2] = bg[2];
  let filled = 3;
  const total = width * height * 3;
  while (filled < total) {
    const n = Math.min(filled, total - filled);
    out.copyWithin(filled, 0, n);
    filled += n;
  }
  const m = Math.min(width, height);
  const r = Math.max(2, Math.round(0.2 * m));
  const [dx, dy] = scene.direction ? SYNTH_DIRECTIONS[scene.direction] : [0, 0];
  // Travel half the frame along the motion axis, centred; `offset` in [-1, 1] shifts across it.
  const cx = width / 2 + dx * 0.5 * width * (p - 0.5) + (dy !== 0 ? offset * 0.2 * width : 0);
  const cy = height / 2 + dy * 0.5 * height * (p - 0.5) + (dx !== 0 ? offset * 0.2 * height : 0);
  const x0 = Math.max(0, Math.floor(cx - r - 1));
  const x1 = Math.min(width - 1, Math.ceil(cx + r + 1));
  const y0 = Math.max(0, Math.floor(cy - r - 1));
  const y1 = Math.min(height - 1, Math.ceil(cy + r + 1));
  for (let y = y0; y <= y1; y++) {
    const py = y + 0.5 - cy;
    for (let x = x0; x <= x1; x++) {
      const px = x + 0.5 - cx;
      let inside: boolean;
      switch (scene.shape) {
        case 'circle':
          inside = px * px + py * py <= r * r;
          break;
        case 'square':
          inside = Math.abs(px) <= r * 0.85 && Math.abs(py) <= r * 0.85;
          break;
        case 'diamond':
          inside = Math.abs(px) + Math.abs(py) <= r;
          break;
        case 'triangle':
          // apex up: at height py (from -r to r), half width grows from 0 to r
          inside = py >= -r && py <= r && Math.abs(px) <= (py + r) / 2;
          break;
      }
      if (inside) {
        const o = (y * width + x) * 3;
        out[o] = fg[0];
        out[o + 1] = fg[1];
        out[o + 2] = fg[2];
      }
    }
  }
}

function pickDistinct<T>(rng: Rng, pool: readonly T[], avoid: readonly T[]): T {
  const ok = pool.filter((c) => !avoid.includes(c));
  const from = ok.length ? ok : pool;
  return from[rng.int(from.length)]!;
}

/** Encodes raw RGB frames to an H.264 mp4 (yuv420p, every frame kept, constant frame rate). */
export function encodeMp4(
  file: string,
  frames: Iterable<Uint8Array>,
  opts: { width: number; height: number; fps: number; crf?: number; preset?: string; gop?: number } & BinaryOptions,
): Promise<void> {
  assertArg(opts.width % 2 === 0 && opts.height % 2 === 0, `H.264 4:2:0 needs even sizes, got ${opts.width}x${opts.height}`);
  return new Promise((resolve, reject) => {
    const input = new PassThrough({ highWaterMark: opts.width * opts.height * 3 * 4 });
    const cmd = ffmpegCommand(input, opts)
      .inputFormat('rawvideo')
      .inputOptions(['-pix_fmt', 'rgb24', '-s', `${opts.width}x${opts.height}`, '-r', String(opts.fps)])
      .videoCodec('libx264')
      .outputOptions([
        '-pix_fmt',
        'yuv420p',
        '-preset',
        opts.preset ?? 'ultrafast',
        '-crf',
        String(opts.crf ?? 18),
        '-g',
        String(opts.gop ?? 32),
        '-r',
        String(opts.fps),
        '-threads',
        '1',
        '-an',
        '-v',
        'error',
      ])
      .format('mp4');
    cmd.on('error', (err: Error, _o: string | null, stderr: string | null) => reject(new MediaError(file, `encode failed: ${err.message} ${stderr ?? ''}`.trim())));
    cmd.on('end', () => resolve());
    cmd.save(file);
    (async () => {
      for (const f of frames) {
        if (!input.write(f)) await new Promise<void>((r) => input.once('drain', () => r()));
      }
      input.end();
    })().catch(reject);
  });
}

/** Writes an RGB frame as PNG. */
export async function writePng(file: string, frame: { data: Uint8Array; width: number; height: number }): Promise<void> {
  await sharp(Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength), {
    raw: { width: frame.width, height: frame.height, channels: 3 },
  })
    .png()
    .toFile(file);
}

function splitLength(rng: Rng, n: number, scenes: number, minLen: number): number[] {
  // Returns cut positions (scene starts after the first).
  if (scenes <= 1 || n < scenes * minLen) return [];
  const cuts: number[] = [];
  let start = 0;
  for (let s = 1; s < scenes; s++) {
    const remainingScenes = scenes - s;
    const lo = start + minLen;
    const hi = n - remainingScenes * minLen;
    const c = lo + rng.int(hi - lo + 1);
    cuts.push(c);
    start = c;
  }
  return cuts;
}

/** Generates the synthetic dataset; deterministic for a seed and options. */
export async function synthesizeDataset(options: SynthOptions): Promise<SynthResult> {
  const rng = new Rng(options.seed ?? 0);
  const outDir = path.resolve(options.outDir);
  const mediaDir = options.mediaDir ?? 'media';
  mkdirSync(path.join(outDir, mediaDir), { recursive: true });
  const sizes = options.sizes ?? [
    [32, 32],
    [32, 48],
    [48, 32],
    [36, 64],
    [64, 64],
  ];
  const imageSizes = options.imageSizes ?? sizes;
  for (const [h, w] of [...sizes, ...imageSizes]) assertArg(h % 2 === 0 && w % 2 === 0 && h >= 8 && w >= 8, `synth sizes must be even and >= 8, got ${h}x${w}`);
  const lengths = options.lengths ?? [8, 12, 16, 24];
  const fpsChoices = options.fps ?? [8, 12, 24, 30];
  const colors = options.colors ?? SYNTH_COLOR_NAMES;
  const shapes = options.shapes ?? [...SYNTH_SHAPES];
  const directions = options.directions ?? SYNTH_DIRECTION_NAMES;
  assertArg(colors.length >= 2, 'synth needs at least two colours');
  const numVideos = options.numVideos ?? 12;
  const numImages = options.numImages ?? 4;
  const cutFraction = options.cutFraction ?? 0.25;
  const minScene = options.minSceneFrames ?? 4;
  const scenesPerCut = options.scenesPerCut ?? 2;
  const numCut = Math.round(numVideos * cutFraction);

  const items: SynthItem[] = [];
  const newScene = (start: number, end: number, prev: SynthScene | undefined, moving: boolean): SynthScene => {
    const background = pickDistinct(rng, colors, prev ? [prev.background] : []);
    const color = pickDistinct(rng, colors, [background]);
    const shape = shapes[rng.int(shapes.length)]!;
    const direction = moving ? directions[rng.int(directions.length)]! : null;
    const s = { start, end, shape, color, direction, background };
    return { ...s, caption: synthCaption(s) };
  };
  for (let v = 0; v < numVideos; v++) {
    const [height, width] = sizes[rng.int(sizes.length)]!;
    const fps = fpsChoices[rng.int(fpsChoices.length)]!;
    let numFrames = lengths[rng.int(lengths.length)]!;
    const withCut = v < numCut;
    if (withCut) numFrames = Math.max(numFrames, scenesPerCut * minScene);
    const cuts = withCut ? splitLength(rng, numFrames, scenesPerCut, minScene) : [];
    const bounds = [0, ...cuts, numFrames];
    const scenes: SynthScene[] = [];
    for (let s = 0; s + 1 < bounds.length; s++) scenes.push(newScene(bounds[s]!, bounds[s + 1]!, scenes[s - 1], true));
    items.push({
      path: `${mediaDir}/video_${String(v).padStart(4, '0')}.mp4`,
      kind: 'video',
      height,
      width,
      numFrames,
      fps,
      scenes,
      cuts,
      caption: joinSceneCaptions(scenes.map((s) => s.caption)),
    });
  }
  for (let i = 0; i < numImages; i++) {
    const [height, width] = imageSizes[rng.int(imageSizes.length)]!;
    const scene = newScene(0, 1, undefined, false);
    items.push({ path: `${mediaDir}/image_${String(i).padStart(4, '0')}.png`, kind: 'image', height, width, numFrames: 1, fps: NaN, scenes: [scene], cuts: [], caption: scene.caption });
  }
  // Per-item offsets drawn up front so that the result does not depend on encode order.
  const offsets = items.map(() => rng.uniform(-1, 1));

  const limit = pLimit(options.concurrency ?? 4);
  await Promise.all(
    items.map((it, k) =>
      limit(async () => {
        const file = path.join(outDir, it.path);
        if (it.kind === 'image') {
          const data = new Uint8Array(it.width * it.height * 3);
          renderSynthFrame(data, it.width, it.height, it.scenes[0]!, 0.5, offsets[k]);
          await writePng(file, { data, width: it.width, height: it.height });
          return;
        }
        function* frames(): Generator<Uint8Array> {
          for (const s of it.scenes) {
            const n = s.end - s.start;
            for (let t = 0; t < n; t++) {
              const buf = new Uint8Array(it.width * it.height * 3);
              renderSynthFrame(buf, it.width, it.height, s, n > 1 ? t / (n - 1) : 0.5, offsets[k]);
              yield buf;
            }
          }
        }
        await encodeMp4(file, frames(), { width: it.width, height: it.height, fps: it.fps, crf: options.crf, preset: options.preset, ffmpegPath: options.ffmpegPath, ffprobePath: options.ffprobePath });
      }),
    ),
  );

  const rows: DatasetRow[] = items.map((it) => ({
    path: it.path,
    text: it.caption,
    num_frames: it.numFrames,
    height: it.height,
    width: it.width,
    aspect_ratio: it.height / it.width,
    fps: it.kind === 'video' ? it.fps : undefined,
    resolution: it.height * it.width,
    cuts: it.cuts.length ? JSON.stringify(it.cuts) : undefined,
  }));
  const csvPath = path.join(outDir, options.csvName ?? 'synth.csv');
  await writeDatasetCsv(csvPath, rows, { columns: ['path', 'text', 'num_frames', 'height', 'width', 'aspect_ratio', 'fps', 'resolution', 'cuts'] });
  return { csvPath, rows, items };
}
