/**
 * Scene detection: PySceneDetect 0.6's AdaptiveDetector (what the reference's scene_detect.py
 * runs) over decoded frames. Per frame: the mean absolute HSV difference to the previous frame
 * (OpenCV's 8-bit HSV, weights 1/1/1, no edges) is the content value; a cut is declared where the
 * content value divided by the mean of its +-`windowWidth` neighbours is at least
 * `adaptiveThreshold` (3.0), the content value is at least `minContentVal` (15), and the scene
 * since the last cut is at least `minSceneLen` (15) frames. Frames are downscaled the way the
 * reference's auto-downscale does (integer factor `width // 256`), here by ffmpeg's bilinear scaler.
 */
import { decodeFrames, type DecodeOptions } from './decode.js';
import { resolveRowPath, type DatasetRow } from './csv.js';
import { mapRowsReportingErrors } from './rows.js';
import { DataError, MediaError } from './errors.js';
import { mediaKind, probeMedia } from './media.js';

export interface SceneDetectOptions extends DecodeOptions {
  adaptiveThreshold?: number;
  minSceneLen?: number;
  windowWidth?: number;
  minContentVal?: number;
  /** HSV weights (default [1, 1, 1]). */
  weights?: [number, number, number];
  /** Downscale to width ~ this (PySceneDetect's 256), or 1 to disable. */
  downscaleWidth?: number;
  /** Known facts (else probed). */
  fps?: number;
  nativeWidth?: number;
  nativeHeight?: number;
}

export interface SceneResult {
  /** Frame numbers where a new scene starts (not counting 0). */
  cuts: number[];
  /** [start, end) frame ranges; one covering the whole video when there are no cuts. */
  scenes: Array<[number, number]>;
  /** (start, end) timecodes "HH:MM:SS.mmm", as PySceneDetect's get_timecode(). */
  timestamps: Array<[string, string]>;
  numFrames: number;
  fps: number;
  /** Content value per frame (0 for frame 0). */
  contentValues: Float32Array;
}

/** OpenCV-compatible 8-bit RGB -> HSV (H in [0, 180), S and V in [0, 255]) written planar. */
export function rgbToHsvPlanar(rgb: Uint8Array, n: number, h: Uint8Array, s: Uint8Array, v: Uint8Array): void {
  for (let i = 0; i < n; i++) {
    const r = rgb[i * 3]!;
    const g = rgb[i * 3 + 1]!;
    const b = rgb[i * 3 + 2]!;
    const max = r > g ? (r > b ? r : b) : g > b ? g : b;
    const min = r < g ? (r < b ? r : b) : g < b ? g : b;
    const diff = max - min;
    v[i] = max;
    s[i] = max === 0 ? 0 : Math.round((255 * diff) / max);
    if (diff === 0) {
      h[i] = 0;
      continue;
    }
    let hh: number;
    if (max === r) hh = g - b;
    else if (max === g) hh = b - r + 2 * diff;
    else hh = r - g + 4 * diff;
    let hv = Math.round((30 * hh) / diff);
    if (hv < 0) hv += 180;
    if (hv >= 180) hv -= 180;
    h[i] = hv;
  }
}

/** Formats seconds as "HH:MM:SS.mmm" (rounded to the millisecond). */
export function formatTimecode(seconds: number): string {
  const ms = Math.round(seconds * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const r = ms % 1000;
  const p = (x: number, n = 2) => String(x).padStart(n, '0');
  return `${p(h)}:${p(m)}:${p(s)}.${p(r, 3)}`;
}

/** Parses "HH:MM:SS.mmm" (or "MM:SS.mmm", or plain seconds) to seconds. */
export function parseTimecode(tc: string): number {
  const t = tc.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const m = /^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$/.exec(t);
  if (!m) throw new DataError(`bad timecode '${tc}' (expected HH:MM:SS.mmm)`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3]);
}

/** The reference's `timestamp` cell: Python repr of a list of (start, end) tuples. */
export function formatTimestampColumn(ts: ReadonlyArray<readonly [string, string]>): string {
  return `[${ts.map(([a, b]) => `('${a}', '${b}')`).join(', ')}]`;
}

/** Parses a `timestamp` cell (Python repr or JSON) without eval. */
export function parseTimestampColumn(cell: string): Array<[string, string]> {
  const s = cell.trim();
  if (!(s.startsWith('[') && s.endsWith(']'))) throw new DataError(`timestamp '${cell.slice(0, 60)}' is not a list`);
  const out: Array<[string, string]> = [];
  const re = /[([]\s*['"]([^'"]+)['"]\s*,\s*['"]([^'"]+)['"]\s*[)\]]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) out.push([m[1]!, m[2]!]);
  const inner = s.slice(1, -1).trim();
  if (inner && out.length === 0) throw new DataError(`timestamp '${cell.slice(0, 60)}' has no (start, end) pairs`);
  return out;
}

/** Runs the adaptive detector over precomputed content values (exposed for tests and tools). */
export function adaptiveCuts(contentValues: ArrayLike<number>, options: Pick<SceneDetectOptions, 'adaptiveThreshold' | 'minSceneLen' | 'windowWidth' | 'minContentVal'> = {}): number[] {
  const thr = options.adaptiveThreshold ?? 3.0;
  const minLen = options.minSceneLen ?? 15;
  const ww = options.windowWidth ?? 2;
  const minContent = options.minContentVal ?? 15.0;
  const cuts: number[] = [];
  let lastCut = 0;
  const n = contentValues.length;
  // frame_num runs over every frame; the target frame is the centre of the full window.
  for (let frame = 2 * ww; frame < n; frame++) {
    const target = frame - ww;
    let sum = 0;
    for (let k = target - ww; k <= target + ww; k++) if (k !== target) sum += contentValues[k]!;
    const avg = sum / (2 * ww);
    const val = contentValues[target]!;
    let ratio = 0;
    if (Math.abs(avg) >= 1e-5) ratio = Math.min(val / avg, 255);
    else if (val >= minContent) ratio = 255;
    if (ratio >= thr && val >= minContent && frame - lastCut >= minLen) {
      cuts.push(target);
      lastCut = target;
    }
  }
  return cuts;
}

/** Detects scenes in one video. */
export async function detectScenes(file: string, options: SceneDetectOptions = {}): Promise<SceneResult> {
  let { fps, nativeWidth: w, nativeHeight: h } = options;
  if (!(fps && fps > 0 && w && h)) {
    const info = await probeMedia(file, options);
    fps = fps && fps > 0 ? fps : info.fps;
    w = info.width;
    h = info.height;
  }
  const target = options.downscaleWidth ?? 256;
  const factor = target > 1 && w >= target ? Math.floor(w / target) : 1;
  const dw = factor > 1 ? Math.max(2, Math.round(w / factor)) : w;
  const dh = factor > 1 ? Math.max(2, Math.round(h / factor)) : h;
  const n = dw * dh;
  const weights = options.weights ?? [1, 1, 1];
  const wsum = Math.abs(weights[0]) + Math.abs(weights[1]) + Math.abs(weights[2]);
  let prev = { h: new Uint8Array(n), s: new Uint8Array(n), v: new Uint8Array(n) };
  let cur = { h: new Uint8Array(n), s: new Uint8Array(n), v: new Uint8Array(n) };
  const values: number[] = [];
  const count = await decodeFrames(
    file,
    (frame, idx) => {
      rgbToHsvPlanar(frame.data, n, cur.h, cur.s, cur.v);
      if (idx === 0) values.push(0);
      else {
        let dhs = 0;
        let dss = 0;
        let dvs = 0;
        for (let i = 0; i < n; i++) {
          dhs += Math.abs(cur.h[i]! - prev.h[i]!);
          dss += Math.abs(cur.s[i]! - prev.s[i]!);
          dvs += Math.abs(cur.v[i]! - prev.v[i]!);
        }
        values.push((weights[0] * (dhs / n) + weights[1] * (dss / n) + weights[2] * (dvs / n)) / wsum);
      }
      [prev, cur] = [cur, prev];
    },
    { ...options, nativeWidth: w, nativeHeight: h, width: factor > 1 ? dw : undefined, height: factor > 1 ? dh : undefined },
  );
  if (count === 0) throw new MediaError(file, 'no frame could be decoded');
  const cuts = adaptiveCuts(values, options);
  const bounds = [0, ...cuts, count];
  const scenes: Array<[number, number]> = [];
  for (let i = 0; i + 1 < bounds.length; i++) scenes.push([bounds[i]!, bounds[i + 1]!]);
  const timestamps = scenes.map(([a, b]) => [formatTimecode(a / fps!), formatTimecode(b / fps!)] as [string, string]);
  return { cuts, scenes, timestamps, numFrames: count, fps, contentValues: Float32Array.from(values) };
}

export interface RowError {
  /** 0-based index of the row in the input. */
  row: number;
  path: string;
  error: string;
}

export interface SceneDetectRowsOptions extends SceneDetectOptions {
  root?: string;
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * scene_detect.py over a table: adds `timestamp` to every video row; rows that fail are reported
 * and dropped (as the reference does); image rows pass through without a timestamp.
 */
export async function detectScenesInRows(rows: readonly DatasetRow[], options: SceneDetectRowsOptions = {}): Promise<{ rows: DatasetRow[]; errors: RowError[] }> {
  const root = options.root ?? process.cwd();
  return mapRowsReportingErrors(
    rows,
    async (row) => {
      const file = resolveRowPath(row.path, root);
      if (mediaKind(file) === 'image') return row;
      const r = await detectScenes(file, {
        ...options,
        fps: row.fps && row.fps > 0 ? row.fps : undefined,
        nativeWidth: row.width || undefined,
        nativeHeight: row.height || undefined,
      });
      return { ...row, timestamp: formatTimestampColumn(r.timestamps) };
    },
    { concurrency: options.concurrency ?? 2, onProgress: options.onProgress },
  );
}
