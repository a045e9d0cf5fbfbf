/**
 * Built-in scorers that need no downloaded weights.
 *
 * - `flowScorer` (column `flow`): motion magnitude at the reference's frame positions
 *   (0, 10, 20, 30) and working size (320x576; portrait clips use 576x320 instead of the
 *   reference's transpose), as the mean of |dx| and |dy| in pixels. The reference runs the
 *   UniMatch GMFlow network; this is coarse-to-fine block matching (8x8 blocks, SAD), so it
 *   measures the same quantity (pixels moved between sampled frames) with block, not per-pixel,
 *   resolution. Pairs that collapse to the same frame after clamping (clips shorter than 31
 *   frames) are skipped instead of counted as zero motion (the reference's deflation, spec 9.21).
 *   `method: 'diff'` gives the mean absolute grey-level frame difference instead (not pixels).
 * - `sharpnessScorer` (column `sharpness`): variance of the 4-neighbour Laplacian of the grey
 *   middle frame, at native size. Higher is sharper.
 */
import type { Frame } from '../decode.js';
import { toGray } from '../imageops.js';
import type { ScoreInput, Scorer } from '../score.js';

/** The reference's flow frame positions. */
export const FLOW_FRAME_INDICES = [0, 10, 20, 30] as const;

interface Plane {
  data: Float32Array;
  width: number;
  height: number;
}

function downsample(p: Plane): Plane {
  const w = Math.max(1, p.width >> 1);
  const h = Math.max(1, p.height >> 1);
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const x0 = Math.min(p.width - 1, 2 * x);
      const y0 = Math.min(p.height - 1, 2 * y);
      const x1 = Math.min(p.width - 1, x0 + 1);
      const y1 = Math.min(p.height - 1, y0 + 1);
      out[y * w + x] = (p.data[y0 * p.width + x0]! + p.data[y0 * p.width + x1]! + p.data[y1 * p.width + x0]! + p.data[y1 * p.width + x1]!) / 4;
    }
  }
  return { data: out, width: w, height: h };
}

/**
 * Coarse-to-fine block matching from `a` to `b` (grey planes of equal size). Returns per-block
 * vectors at full resolution for blocks of `block` pixels, and the block grid.
 */
export function blockMatch(a: Plane, b: Plane, options: { block?: number; levels?: number; coarseRadius?: number; refineRadius?: number } = {}): { dx: Float32Array; dy: Float32Array; cols: number; rows: number } {
  const block = options.block ?? 8;
  const levels = options.levels ?? 3;
  const pa: Plane[] = [a];
  const pb: Plane[] = [b];
  for (let l = 1; l < levels; l++) {
    pa.push(downsample(pa[l - 1]!));
    pb.push(downsample(pb[l - 1]!));
  }
  let prev: { dx: Float32Array; dy: Float32Array; cols: number; rows: number } | null = null;
  for (let l = levels - 1; l >= 0; l--) {
    const A = pa[l]!;
    const B = pb[l]!;
    const cols = Math.max(1, Math.floor(A.width / block));
    const rows = Math.max(1, Math.floor(A.height / block));
    const dx = new Float32Array(cols * rows);
    const dy = new Float32Array(cols * rows);
    const radius = prev ? (options.refineRadius ?? 2) : (options.coarseRadius ?? 8);
    for (let by = 0; by < rows; by++) {
      for (let bx = 0; bx < cols; bx++) {
        const x0 = bx * block;
        const y0 = by * block;
        const bw = Math.min(block, A.width - x0);
        const bh = Math.min(block, A.height - y0);
        const sadAt = (sx: number, sy: number, limit: number): number => {
          if (y0 + sy < 0 || y0 + sy + bh > B.height || x0 + sx < 0 || x0 + sx + bw > B.width) return Infinity;
          let sad = 0;
          for (let y = 0; y < bh && sad < limit; y++) {
            const ra = (y0 + y) * A.width + x0;
            const rb = (y0 + y + sy) * B.width + x0 + sx;
            for (let x = 0; x < bw; x++) sad += Math.abs(A.data[ra + x]! - B.data[rb + x]!);
          }
          // Prefer the smaller displacement among (near) ties: flat areas then read as still.
          return sad + 1e-3 * (Math.abs(sx) + Math.abs(sy));
        };
        // Predictors: the parent block's vector and its neighbours' (scaled to this level).
        let gx = 0;
        let gy = 0;
        if (prev) {
          const px = Math.min(prev.cols - 1, bx >> 1);
          const py = Math.min(prev.rows - 1, by >> 1);
          let bestP = Infinity;
          for (let ny = Math.max(0, py - 1); ny <= Math.min(prev.rows - 1, py + 1); ny++) {
            for (let nx = Math.max(0, px - 1); nx <= Math.min(prev.cols - 1, px + 1); nx++) {
              const cx = Math.round(prev.dx[ny * prev.cols + nx]! * 2);
              const cy = Math.round(prev.dy[ny * prev.cols + nx]! * 2);
              const v = sadAt(cx, cy, bestP);
              if (v < bestP) {
                bestP = v;
                gx = cx;
                gy = cy;
              }
            }
          }
        }
        let best = Infinity;
        let bestX = gx;
        let bestY = gy;
        for (let sy = gy - radius; sy <= gy + radius; sy++) {
          for (let sx = gx - radius; sx <= gx + radius; sx++) {
            const v = sadAt(sx, sy, best);
            if (v < best) {
              best = v;
              bestX = sx;
              bestY = sy;
            }
          }
        }
        dx[by * cols + bx] = bestX;
        dy[by * cols + bx] = bestY;
      }
    }
    prev = { dx, dy, cols, rows };
  }
  return prev!;
}

function grayPlane(f: Frame): Plane {
  return { data: toGray(f), width: f.width, height: f.height };
}

export interface FlowScorerOptions {
  /** Working size [H, W] for landscape clips (default [320, 576], the reference's). */
  size?: [number, number];
  frameIndices?: readonly number[];
  method?: 'block' | 'diff';
  column?: string;
  block?: number;
}

/** Motion score into `flow` (see module comment). */
export function flowScorer(options: FlowScorerOptions = {}): Scorer {
  const [sh, sw] = options.size ?? [320, 576];
  const method = options.method ?? 'block';
  return {
    name: method === 'block' ? 'flow' : 'motion-diff',
    column: options.column ?? 'flow',
    frames: { indices: options.frameIndices ?? FLOW_FRAME_INDICES },
    decodeSize: (w, h) => (h > w ? { width: sh, height: sw } : { width: sw, height: sh }),
    score(input: ScoreInput): number {
      const planes = input.frames.map(grayPlane);
      let total = 0;
      let pairs = 0;
      for (let k = 0; k + 1 < planes.length; k++) {
        if (input.indices[k] === input.indices[k + 1]) continue;
        const a = planes[k]!;
        const b = planes[k + 1]!;
        if (method === 'diff') {
          let s = 0;
          for (let i = 0; i < a.data.length; i++) s += Math.abs(a.data[i]! - b.data[i]!);
          total += s / a.data.length;
        } else {
          const m = blockMatch(a, b, { block: options.block });
          let s = 0;
          for (let i = 0; i < m.dx.length; i++) s += (Math.abs(m.dx[i]!) + Math.abs(m.dy[i]!)) / 2;
          total += s / m.dx.length;
        }
        pairs++;
      }
      return pairs ? total / pairs : 0;
    },
  };
}

/** Variance of the Laplacian of a grey plane (OpenCV Laplacian ksize=1, replicated border). */
export function laplacianVariance(f: Frame): number {
  const g = toGray(f);
  const w = f.width;
  const h = f.height;
  let sum = 0;
  let sum2 = 0;
  const at = (x: number, y: number) => g[Math.min(h - 1, Math.max(0, y)) * w + Math.min(w - 1, Math.max(0, x))]!;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = at(x - 1, y) + at(x + 1, y) + at(x, y - 1) + at(x, y + 1) - 4 * g[y * w + x]!;
      sum += v;
      sum2 += v * v;
    }
  }
  const n = w * h;
  const mean = sum / n;
  return Math.max(0, sum2 / n - mean * mean);
}

/** Sharpness into `sharpness`: variance of the Laplacian of the middle frame. */
export function sharpnessScorer(options: { column?: string; points?: readonly number[] } = {}): Scorer {
  return {
    name: 'sharpness',
    column: options.column ?? 'sharpness',
    frames: { points: options.points ?? [0.5] },
    score(input: ScoreInput): number {
      let s = 0;
      for (const f of input.frames) s += laplacianVariance(f);
      return s / input.frames.length;
    },
  };
}
