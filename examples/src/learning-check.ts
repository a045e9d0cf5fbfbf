/**
 * Learning check for the demo: reads generated RGB frames and measures, from the pixels alone,
 * whether a sample shows what its prompt asked for ("a red circle moving left on a blue
 * background"): the background colour, the object colour and (for videos) the motion direction.
 *
 * Everything here is pure and total: garbage frames (noise, blur, wrong sizes, NaN-free but
 * meaningless pixels) give `null` fields, never an exception. The statistics are robust ones
 * (a smoothed mode in a quantised colour space refined by per-channel medians, a 3x3 box
 * denoise, median centroids and a Theil-Sen motion fit) because a tiny model's samples are
 * noisy and blurry.
 */
import { SYNTH_COLORS, SYNTH_COLOR_NAMES, SYNTH_DIRECTION_NAMES, parseSynthCaption, type SynthColor, type SynthDirection } from '@opensora/data';

export type Rgb = [number, number, number];

/** uint8 RGB video, `data` is [frames, height, width, 3] interleaved (a still image has one frame). */
export interface RgbVideo {
  data: Uint8Array;
  frames: number;
  height: number;
  width: number;
}

export interface ColorEstimate {
  /** Nearest SYNTH_COLORS entry, or null when none lies within `maxColorDistance`. */
  name: SynthColor | null;
  /** Robust estimate of the colour (0..255 per channel). */
  rgb: Rgb;
  /** Euclidean RGB distance from `rgb` to the nearest palette colour. */
  distance: number;
  /** Fraction of the pixels it was estimated from that lie near `rgb` (how dominant it is). */
  support: number;
}

export interface MotionEstimate {
  /** Displacement of the object's centroid over the clip, in fractions of the frame width / height (y down). */
  dx: number;
  dy: number;
  /** `hypot(dx, dy)`. */
  magnitude: number;
  /** Frames in which the object was found. */
  validFrames: number;
}

export interface FrameAnalysis {
  frames: number;
  height: number;
  width: number;
  background: ColorEstimate | null;
  object: ColorEstimate | null;
  /** Fraction of all pixels (all frames) classified as object. */
  objectFraction: number;
  /** Dominant axis of the centroid's motion, null when it barely moves, for a single frame or without an object. */
  direction: SynthDirection | null;
  motion: MotionEstimate | null;
  /** Distance from the background above which a (denoised) pixel counts as object. */
  threshold: number | null;
}

export interface AnalyzeOptions {
  /** Nearest-palette matches farther than this (RGB Euclidean distance) are reported as `name: null`. Default 100. */
  maxColorDistance?: number;
  /** Below this object fraction there is no object. Default 0.004. */
  minObjectFraction?: number;
  /** Centroid displacement (fraction of the frame) below which the direction is null. Default 0.1. */
  minMotion?: number;
  /** Width of the border band used for the background, as a fraction of min(H, W). Default 0.08 (at least 1 px). */
  borderFraction?: number;
}

const DEFAULTS: Required<AnalyzeOptions> = { maxColorDistance: 100, minObjectFraction: 0.004, minMotion: 0.1, borderFraction: 0.08 };

/** Radius (RGB distance) of the neighbourhood that the median refinement of a colour mode uses. */
const MODE_RADIUS = 56;
/** The object colour is estimated from the candidate pixels above this quantile of distance from the background. */
const CORE_QUANTILE = 0.6;

function emptyAnalysis(video: Partial<RgbVideo> | null | undefined): FrameAnalysis {
  const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return {
    frames: num(video?.frames),
    height: num(video?.height),
    width: num(video?.width),
    background: null,
    object: null,
    objectFraction: 0,
    direction: null,
    motion: null,
    threshold: null,
  };
}

function isPosInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/** Nearest palette colour to `rgb` (Euclidean in RGB). */
export function nearestSynthColor(rgb: readonly number[], maxDistance = DEFAULTS.maxColorDistance): { name: SynthColor | null; distance: number } {
  let best: SynthColor = SYNTH_COLOR_NAMES[0]!;
  let bestD = Infinity;
  for (const name of SYNTH_COLOR_NAMES) {
    const c = SYNTH_COLORS[name];
    const d = Math.hypot(rgb[0]! - c[0], rgb[1]! - c[1], rgb[2]! - c[2]);
    if (d < bestD) {
      bestD = d;
      best = name;
    }
  }
  return { name: bestD <= maxDistance ? best : null, distance: bestD };
}

/** 3x3 box filter of every frame (edges clamped), as a new buffer. */
function boxDenoise(v: RgbVideo): Uint8Array {
  const { frames: T, height: H, width: W } = v;
  const src = v.data;
  const out = new Uint8Array(T * H * W * 3);
  const frame = H * W * 3;
  for (let t = 0; t < T; t++) {
    const base = t * frame;
    for (let y = 0; y < H; y++) {
      const y0 = y > 0 ? y - 1 : 0;
      const y1 = y < H - 1 ? y + 1 : H - 1;
      for (let x = 0; x < W; x++) {
        const x0 = x > 0 ? x - 1 : 0;
        const x1 = x < W - 1 ? x + 1 : W - 1;
        let r = 0;
        let g = 0;
        let b = 0;
        let n = 0;
        for (let yy = y0; yy <= y1; yy++) {
          let o = base + (yy * W + x0) * 3;
          for (let xx = x0; xx <= x1; xx++, o += 3) {
            r += src[o]!;
            g += src[o + 1]!;
            b += src[o + 2]!;
            n++;
          }
        }
        const o = base + (y * W + x) * 3;
        out[o] = Math.round(r / n);
        out[o + 1] = Math.round(g / n);
        out[o + 2] = Math.round(b / n);
      }
    }
  }
  return out;
}

/** Median of uint8 values given by their 256-bin histogram (lower median). */
function histMedian(hist: Uint32Array, n: number): number {
  const half = (n - 1) / 2;
  let acc = 0;
  for (let v = 0; v < 256; v++) {
    acc += hist[v]!;
    if (acc > half) return v;
  }
  return 255;
}

/**
 * Robust dominant colour of the pixels at `idx` (byte offsets into `data`): the mode of a 8-level
 * per-channel histogram smoothed over neighbouring bins, then three rounds of per-channel medians
 * over the pixels within MODE_RADIUS of the current estimate.
 */
function dominantColor(data: Uint8Array, idx: Int32Array | number[], count: number): { rgb: Rgb; support: number } | null {
  if (count <= 0) return null;
  const bins = new Uint32Array(512);
  for (let i = 0; i < count; i++) {
    const o = idx[i]!;
    bins[((data[o]! >> 5) << 6) | ((data[o + 1]! >> 5) << 3) | (data[o + 2]! >> 5)]!++;
  }
  let bestBin = -1;
  let bestScore = -1;
  for (let b = 0; b < 512; b++) {
    if (bins[b] === 0) continue;
    const r = b >> 6;
    const g = (b >> 3) & 7;
    const bl = b & 7;
    // The bin itself counts double so that the peak sits on the bin, not between two.
    let score = bins[b]!;
    for (let dr = -1; dr <= 1; dr++) {
      const rr = r + dr;
      if (rr < 0 || rr > 7) continue;
      for (let dg = -1; dg <= 1; dg++) {
        const gg = g + dg;
        if (gg < 0 || gg > 7) continue;
        for (let db = -1; db <= 1; db++) {
          const bb = bl + db;
          if (bb < 0 || bb > 7) continue;
          score += bins[(rr << 6) | (gg << 3) | bb]!;
        }
      }
    }
    if (score > bestScore) {
      bestScore = score;
      bestBin = b;
    }
  }
  let c: Rgb = [((bestBin >> 6) << 5) + 16, (((bestBin >> 3) & 7) << 5) + 16, ((bestBin & 7) << 5) + 16];
  const hr = new Uint32Array(256);
  const hg = new Uint32Array(256);
  const hb = new Uint32Array(256);
  const r2 = MODE_RADIUS * MODE_RADIUS;
  let near = 0;
  for (let iter = 0; iter < 4; iter++) {
    hr.fill(0);
    hg.fill(0);
    hb.fill(0);
    near = 0;
    for (let i = 0; i < count; i++) {
      const o = idx[i]!;
      const dr = data[o]! - c[0];
      const dg = data[o + 1]! - c[1];
      const db = data[o + 2]! - c[2];
      if (dr * dr + dg * dg + db * db > r2) continue;
      hr[data[o]!]!++;
      hg[data[o + 1]!]!++;
      hb[data[o + 2]!]!++;
      near++;
    }
    if (near === 0) break;
    const next: Rgb = [histMedian(hr, near), histMedian(hg, near), histMedian(hb, near)];
    const moved = Math.abs(next[0] - c[0]) + Math.abs(next[1] - c[1]) + Math.abs(next[2] - c[2]);
    c = next;
    if (moved === 0 && iter > 0) break;
  }
  return { rgb: c, support: near / count };
}

function estimate(rgb: Rgb, support: number, maxDistance: number): ColorEstimate {
  const { name, distance } = nearestSynthColor(rgb, maxDistance);
  return { name, rgb, distance, support };
}

function dist2(data: Uint8Array, o: number, c: Rgb): number {
  const dr = data[o]! - c[0];
  const dg = data[o + 1]! - c[1];
  const db = data[o + 2]! - c[2];
  return dr * dr + dg * dg + db * db;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Theil-Sen slope of ys over ts. */
function theilSen(ts: number[], ys: number[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < ts.length; i++) for (let j = i + 1; j < ts.length; j++) slopes.push((ys[j]! - ys[i]!) / (ts[j]! - ts[i]!));
  return slopes.length ? median(slopes) : 0;
}

/**
 * Estimates background colour (border pixels), object colour (pixels clearly different from the
 * background, nearest palette colour), object fraction and motion direction of the object's
 * centroid. Never throws: invalid or meaningless input gives null fields.
 */
export function analyzeFrames(video: RgbVideo, options: AnalyzeOptions = {}): FrameAnalysis {
  try {
    return analyzeUnsafe(video, { ...DEFAULTS, ...options });
  } catch {
    return emptyAnalysis(video);
  }
}

function analyzeUnsafe(video: RgbVideo, opts: Required<AnalyzeOptions>): FrameAnalysis {
  const empty = emptyAnalysis(video);
  if (!video || !(video.data instanceof Uint8Array)) return empty;
  const { frames: T, height: H, width: W } = video;
  if (!isPosInt(T) || !isPosInt(H) || !isPosInt(W) || video.data.length < T * H * W * 3) return empty;
  const data = boxDenoise(video);
  const hw = H * W;
  const total = T * hw;

  // Background: dominant colour of a border band over all frames.
  const band = Math.max(1, Math.round(Math.min(H, W) * opts.borderFraction));
  const border: number[] = [];
  for (let t = 0; t < T; t++) {
    for (let y = 0; y < H; y++) {
      const edgeRow = y < band || y >= H - band;
      for (let x = 0; x < W; x++) {
        if (edgeRow || x < band || x >= W - band) border.push((t * hw + y * W + x) * 3);
      }
    }
  }
  const bgDom = dominantColor(data, border, border.length);
  if (!bgDom) return empty;
  const bg = bgDom.rgb;
  const background = estimate(bg, bgDom.support, opts.maxColorDistance);

  // Object threshold from the spread of the border around the background.
  const bd = border.map((o) => Math.sqrt(dist2(data, o, bg)));
  const threshold = Math.min(100, Math.max(40, 3 * median(bd) + 30));
  const t2 = threshold * threshold;

  const candidates = new Int32Array(total);
  let nCand = 0;
  for (let p = 0; p < total; p++) {
    if (dist2(data, p * 3, bg) > t2) candidates[nCand++] = p * 3;
  }
  const result: FrameAnalysis = { ...empty, background, threshold };
  if (nCand / total < opts.minObjectFraction) return result;
  // Object colour from the candidates farthest from the background: blur blends the object's
  // edge into the background, and the pure colour survives only in its core.
  const cd = new Float64Array(nCand);
  for (let i = 0; i < nCand; i++) cd[i] = dist2(data, candidates[i]!, bg);
  const cut = Float64Array.from(cd).sort()[Math.floor(nCand * CORE_QUANTILE)]!;
  const core: number[] = [];
  for (let i = 0; i < nCand; i++) if (cd[i]! >= cut) core.push(candidates[i]!);
  // Raw pixels: the denoise would blend the core with the edge once more.
  const objDom = dominantColor(video.data, core, core.length);
  if (!objDom) return result;
  const obj = objDom.rgb;

  // Refined mask: far from the background and nearer the object colour than the background.
  const xsByFrame: number[][] = Array.from({ length: T }, () => []);
  const ysByFrame: number[][] = Array.from({ length: T }, () => []);
  let nObj = 0;
  for (let i = 0; i < nCand; i++) {
    const o = candidates[i]!;
    if (dist2(data, o, obj) >= dist2(data, o, bg)) continue;
    const p = o / 3;
    const t = Math.floor(p / hw);
    const r = p - t * hw;
    const y = Math.floor(r / W);
    xsByFrame[t]!.push((r - y * W + 0.5) / W);
    ysByFrame[t]!.push((y + 0.5) / H);
    nObj++;
  }
  const objectFraction = nObj / total;
  if (objectFraction < opts.minObjectFraction) return { ...result, objectFraction };
  const object = estimate(obj, objDom.support, opts.maxColorDistance);

  if (T < 2) return { ...result, object, objectFraction };
  // Per-frame median centroid; frames with too few object pixels are skipped.
  const minPixels = Math.max(2, Math.round(0.25 * (nObj / T)));
  const ts: number[] = [];
  const cxs: number[] = [];
  const cys: number[] = [];
  for (let t = 0; t < T; t++) {
    if (xsByFrame[t]!.length < minPixels) continue;
    ts.push(t);
    cxs.push(median(xsByFrame[t]!));
    cys.push(median(ysByFrame[t]!));
  }
  if (ts.length < 2) return { ...result, object, objectFraction, motion: { dx: 0, dy: 0, magnitude: 0, validFrames: ts.length } };
  const dx = theilSen(ts, cxs) * (T - 1);
  const dy = theilSen(ts, cys) * (T - 1);
  const magnitude = Math.hypot(dx, dy);
  let direction: SynthDirection | null = null;
  if (magnitude >= opts.minMotion) direction = Math.abs(dx) >= Math.abs(dy) ? (dx < 0 ? 'left' : 'right') : dy < 0 ? 'up' : 'down';
  return { ...result, object, objectFraction, direction, motion: { dx, dy, magnitude, validFrames: ts.length } };
}

export interface ExpectedScene {
  color: SynthColor;
  shape: string;
  background: SynthColor;
  direction: SynthDirection | null;
}

/** Verdicts: true / false, or null where the check does not apply (unparseable prompt, direction of an image). */
export interface SampleCheck {
  prompt: string;
  /** Parsed scenes of the prompt, null when it is not a synthetic caption. */
  expected: ExpectedScene[] | null;
  /** One analysis per scene (a multi-scene prompt splits the frames evenly into consecutive segments). */
  analysis: FrameAnalysis[];
  objectColor: boolean | null;
  background: boolean | null;
  direction: boolean | null;
}

/**
 * Compares a sample with its prompt. For a multi-scene prompt ("..., then ...") the frames are
 * split evenly into one segment per scene and a field matches only if it matches in every
 * segment. Direction is checked only for videos (more than one frame per scene) whose prompt
 * names one.
 */
export function checkSample(prompt: string, video: RgbVideo, options: AnalyzeOptions = {}): SampleCheck {
  let expected: ExpectedScene[] | null = null;
  try {
    expected = parseSynthCaption(String(prompt));
  } catch {
    expected = null;
  }
  if (!expected || expected.length === 0) {
    return { prompt, expected: null, analysis: [analyzeFrames(video, options)], objectColor: null, background: null, direction: null };
  }
  const T = video && isPosInt(video.frames) ? video.frames : 0;
  const S = expected.length;
  const analysis: FrameAnalysis[] = [];
  for (let s = 0; s < S; s++) {
    if (S === 1) {
      analysis.push(analyzeFrames(video, options));
      continue;
    }
    const start = Math.floor((s * T) / S);
    const end = Math.floor(((s + 1) * T) / S);
    const frame = isPosInt(video?.height) && isPosInt(video?.width) ? video.height * video.width * 3 : 0;
    const ok = end > start && frame > 0 && video.data instanceof Uint8Array && video.data.length >= end * frame;
    analysis.push(
      ok
        ? analyzeFrames({ data: video.data.subarray(start * frame, end * frame), frames: end - start, height: video.height, width: video.width }, options)
        : emptyAnalysis({ frames: 0, height: video?.height, width: video?.width }),
    );
  }
  const every = (f: (e: ExpectedScene, a: FrameAnalysis) => boolean): boolean => expected!.every((e, i) => f(e, analysis[i]!));
  const objectColor = every((e, a) => a.object?.name === e.color);
  const background = every((e, a) => a.background?.name === e.background);
  const applies = expected.every((e, i) => e.direction !== null && analysis[i]!.frames > 1);
  const direction = applies ? every((e, a) => a.direction === e.direction) : null;
  return { prompt, expected, analysis, objectColor, background, direction };
}

export interface Rate {
  matches: number;
  /** Samples where the check applies. */
  total: number;
  /** matches / total, null when total is 0. */
  rate: number | null;
}

export interface LearningReport {
  samples: number;
  objectColor: Rate;
  background: Rate;
  direction: Rate;
  /** Rate expected from guessing: 1 / number of colours, 1 / number of directions. */
  chance: { objectColor: number; background: number; direction: number };
}

function rate(results: readonly SampleCheck[], key: 'objectColor' | 'background' | 'direction'): Rate {
  let matches = 0;
  let total = 0;
  for (const r of results) {
    const v = r[key];
    if (v === null || v === undefined) continue;
    total++;
    if (v) matches++;
  }
  return { matches, total, rate: total ? matches / total : null };
}

/** Match rates over a set of checked samples, with the chance levels. */
export function learningReport(results: readonly SampleCheck[]): LearningReport {
  const colourChance = 1 / SYNTH_COLOR_NAMES.length;
  return {
    samples: results.length,
    objectColor: rate(results, 'objectColor'),
    background: rate(results, 'background'),
    direction: rate(results, 'direction'),
    chance: { objectColor: colourChance, background: colourChance, direction: 1 / SYNTH_DIRECTION_NAMES.length },
  };
}

function pct(x: number | null): string {
  return x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`;
}

function cell(r: Rate): string {
  return r.total ? `${r.matches}/${r.total} ${pct(r.rate)}` : 'n/a';
}

/**
 * The demo's LEARNING CHECK table: per check, trained and untrained match counts and rates, the
 * chance level and the margin (trained minus untrained, in percentage points).
 */
export function formatLearningReport(trained: LearningReport, untrained: LearningReport, title = 'LEARNING CHECK'): string {
  const rows: Array<[string, Rate, Rate, number]> = [
    ['object colour', trained.objectColor, untrained.objectColor, trained.chance.objectColor],
    ['background', trained.background, untrained.background, trained.chance.background],
    ['direction', trained.direction, untrained.direction, trained.chance.direction],
  ];
  const header = ['check', 'trained', 'untrained', 'chance', 'margin'];
  const body = rows.map(([name, t, u, chance]) => {
    const margin = t.rate !== null && u.rate !== null ? `${t.rate >= u.rate ? '+' : ''}${(100 * (t.rate - u.rate)).toFixed(1)} pts` : 'n/a';
    return [name, cell(t), cell(u), pct(chance), margin];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    `${title} (measured from the generated pixels; ${trained.samples} trained vs ${untrained.samples} untrained samples)`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
  ].join('\n');
}
