/**
 * Fixed (non-learned) embeddings, computed in JS with float32 rounding at the same steps as the
 * reference's fp32 PyTorch code (spec sections 2.2, 2.6, 2.7 and 3.4). They are small tables,
 * so computing them on the host is cheaper than a dozen tiny tensor ops and keeps them exact.
 */
const f = Math.fround;

/**
 * Sinusoidal features of `TimestepEmbedder.timestep_embedding`: for each value, `dim` floats
 * [cos(t·freq_k) (dim/2), sin(t·freq_k) (dim/2)], freq_k = exp(-ln(maxPeriod)·k/(dim/2)).
 */
export function timestepFeatures(values: ArrayLike<number>, dim = 256, maxPeriod = 10000): Float32Array {
  const half = Math.floor(dim / 2);
  const freqs = new Float32Array(half);
  const c = f(-Math.log(maxPeriod));
  for (let k = 0; k < half; k++) freqs[k] = f(Math.exp(f(f(c * k) / half)));
  const out = new Float32Array(values.length * dim);
  for (let i = 0; i < values.length; i++) {
    const t = f(values[i]!);
    const row = i * dim;
    for (let k = 0; k < half; k++) {
      const a = f(t * freqs[k]!);
      out[row + k] = Math.cos(a);
      out[row + half + k] = Math.sin(a);
    }
    // odd dim: the reference pads one zero column (never the case for dim = 256)
  }
  return out;
}

/** Python's round(): half to even. */
export function roundHalfEven(x: number): number {
  const fl = Math.floor(x);
  const d = x - fl;
  if (d > 0.5) return fl + 1;
  if (d < 0.5) return fl;
  return fl % 2 === 0 ? fl : fl + 1;
}

export interface PosEmbedGeometry {
  /** Token grid (after patching). */
  h: number;
  w: number;
  /** rs / inputSqSize with rs = sqrt(height0 * width0) in pixels. */
  scale: number;
  /** round(sqrt(h * w)), half to even. */
  baseSize: number;
}

/** Geometry of the 2D position embedding for a token grid and the first sample's pixel size. */
export function posEmbedGeometry(h: number, w: number, heightPx: number, widthPx: number, inputSqSize: number): PosEmbedGeometry {
  const rs = Math.sqrt(heightPx * widthPx);
  return { h, w, scale: rs / inputSqSize, baseSize: roundHalfEven(Math.sqrt(h * w)) };
}

/**
 * `PositionEmbedding2D`: (h·w, dim) table; the token at j·w + i gets
 * [sin(c_i·ω), cos(c_i·ω), sin(r_j·ω), cos(r_j·ω)] with the column coordinate first (spec 2.6).
 */
export function posEmbed2D(dim: number, g: PosEmbedGeometry): Float32Array {
  const halfDim = dim / 2;
  const nFreq = halfDim / 2;
  const inv = new Float32Array(nFreq);
  for (let k = 0; k < nFreq; k++) inv[k] = f(1 / f(Math.pow(10000, f(f(2 * k) / halfDim))));
  const sc = f(g.scale);
  const coords = (n: number) => {
    const out = new Float32Array(n);
    const step = f(g.baseSize / n);
    for (let j = 0; j < n; j++) out[j] = f(f(j / sc) * step);
    return out;
  };
  const rows = coords(g.h);
  const cols = coords(g.w);
  const out = new Float32Array(g.h * g.w * dim);
  const emb = (p: number, dst: number) => {
    for (let k = 0; k < nFreq; k++) {
      const a = f(p * inv[k]!);
      out[dst + k] = Math.sin(a);
      out[dst + nFreq + k] = Math.cos(a);
    }
  };
  for (let j = 0; j < g.h; j++) {
    for (let i = 0; i < g.w; i++) {
      const base = (j * g.w + i) * dim;
      emb(cols[i]!, base);
      emb(rows[j]!, base + halfDim);
    }
  }
  return out;
}

/** rope.freqs of rotary-embedding-torch with freqs_for='lang': θ_i = 1 / 10000^(2i/dim). */
export function ropeFreqs(dim: number, theta = 10000): Float32Array {
  const n = dim / 2;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f(1 / f(Math.pow(theta, f(f(2 * i) / dim))));
  return out;
}

/**
 * RoPE tables for positions 0..T-1, interleaved ("... n -> ... (n r)", r = 2):
 * cos[p, 2i] = cos[p, 2i+1] = cos(p·θ_i) and likewise sin, so that
 * rope(x) = x·cos + rotate_half(x)·sin with rotate_half(x)[2i] = -x[2i+1], [2i+1] = x[2i].
 */
export function ropeTables(T: number, freqs: ArrayLike<number>): { cos: Float32Array; sin: Float32Array } {
  const n = freqs.length;
  const d = 2 * n;
  const cos = new Float32Array(T * d);
  const sin = new Float32Array(T * d);
  for (let p = 0; p < T; p++) {
    for (let i = 0; i < n; i++) {
      const a = f(p * freqs[i]!);
      const c = Math.cos(a);
      const s = Math.sin(a);
      cos[p * d + 2 * i] = c;
      cos[p * d + 2 * i + 1] = c;
      sin[p * d + 2 * i] = s;
      sin[p * d + 2 * i + 1] = s;
    }
  }
  return { cos, sin };
}

/**
 * The signed pair-swap matrix R (d x d) with x·R = rotate_half(x): R[2i+1, 2i] = -1 and
 * R[2i, 2i+1] = 1. A product with R is exact (one ±1 term per output), and it runs on the
 * plain 2-D matMul fast path instead of a reverse/stack of the channel pairs.
 */
export function rotateHalfMatrix(d: number): Float32Array {
  const r = new Float32Array(d * d);
  for (let i = 0; i < d / 2; i++) {
    r[(2 * i + 1) * d + 2 * i] = -1;
    r[2 * i * d + 2 * i + 1] = 1;
  }
  return r;
}
