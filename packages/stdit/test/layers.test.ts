import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '@opensora/core';
import {
  applyRope,
  geluTanh,
  layerNorm,
  modulate,
  posEmbed2D,
  posEmbedGeometry,
  rmsNorm,
  ropeFreqs,
  ropeTables,
  rotateHalfMatrix,
  roundHalfEven,
  sdpa,
  silu,
  timestepFeatures,
  linear,
} from '../src/index.js';

const arr = (t: tf.Tensor) => Array.from(t.dataSync());

beforeAll(async () => {
  await initBackend('wasm');
});

describe('primitive layers on hand-computed values', () => {
  it('linear: y = x Wᵀ + b with W stored (out, in)', () => {
    const y = linear(tf.tensor2d([[1, 2, 3], [4, 5, 6]]), tf.tensor2d([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]), tf.tensor1d([10, 20, 30, 40]));
    expect(arr(y)).toEqual([11, 22, 33, 46, 14, 25, 36, 55]);
  });

  it('layerNorm: (x - mean) / sqrt(biased var + 1e-6), no affine', () => {
    const out = arr(layerNorm(tf.tensor2d([[1, 2, 3, 4]])));
    const s = Math.sqrt(1.25 + 1e-6);
    [-1.5, -0.5, 0.5, 1.5].forEach((v, i) => expect(out[i]).toBeCloseTo(v / s, 6));
  });

  it('rmsNorm: x · rsqrt(mean(x²) + 1e-6) · weight', () => {
    const out = arr(rmsNorm(tf.tensor2d([[3, 4]]), tf.tensor1d([1, 2])));
    const r = 1 / Math.sqrt(12.5 + 1e-6);
    expect(out[0]).toBeCloseTo(3 * r, 6);
    expect(out[1]).toBeCloseTo(8 * r, 6);
  });

  it('t2i_modulate: x · (1 + scale) + shift', () => {
    expect(arr(modulate(tf.tensor1d([2, -1]), tf.tensor1d([1, 0.5]), tf.tensor1d([0.5, -2])))).toEqual([4, 1.5]);
  });

  it('GELU (tanh) and SiLU', () => {
    const g = arr(geluTanh(tf.tensor1d([-1, 0, 1, 3])));
    expect(g[0]).toBeCloseTo(-0.158808, 5);
    expect(g[1]).toBe(0);
    expect(g[2]).toBeCloseTo(0.841192, 5);
    expect(g[3]).toBeCloseTo(2.996363, 5);
    const s = arr(silu(tf.tensor1d([0, 1, -2])));
    expect(s[0]).toBe(0);
    expect(s[1]).toBeCloseTo(0.7310586, 6);
    expect(s[2]).toBeCloseTo(-2 / (1 + Math.exp(2)), 6);
  });

  it('RoPE: interleaved pairs rotated by p·θ_i along the positions axis', () => {
    const freqs = [1, 0.01];
    const { cos, sin } = ropeTables(2, freqs);
    expect(Array.from(cos)).toEqual([1, 1, 1, 1, Math.fround(Math.cos(1)), Math.fround(Math.cos(1)), Math.fround(Math.cos(0.01)), Math.fround(Math.cos(0.01))]);
    // x [T=2, hd=4]
    const x = tf.tensor2d([[1, 2, 3, 4], [1, 2, 3, 4]]);
    const out = arr(applyRope(x, tf.tensor2d(cos, [2, 4]), tf.tensor2d(sin, [2, 4]), tf.tensor2d(rotateHalfMatrix(4), [4, 4])));
    expect(arr(tf.matMul(tf.tensor2d([[1, 2, 3, 4]]), tf.tensor2d(rotateHalfMatrix(4), [4, 4])))).toEqual([-2, 1, -4, 3]);
    expect(out.slice(0, 4)).toEqual([1, 2, 3, 4]); // position 0: identity
    const [c1, s1, c2, s2] = [Math.cos(1), Math.sin(1), Math.cos(0.01), Math.sin(0.01)];
    const want = [1 * c1 - 2 * s1, 2 * c1 + 1 * s1, 3 * c2 - 4 * s2, 4 * c2 + 3 * s2];
    want.forEach((v, i) => expect(out[4 + i]).toBeCloseTo(v, 6));
  });

  it('rope.freqs: θ_i = 10000^(-2i/dim)', () => {
    const f = ropeFreqs(24);
    expect(f.length).toBe(12);
    expect(f[0]).toBe(1);
    expect(f[1]).toBeCloseTo(Math.pow(10000, -2 / 24), 7);
    expect(f[11]).toBeCloseTo(Math.pow(10000, -22 / 24), 9);
  });

  it('scaled dot-product attention, with and without an additive key bias', () => {
    const q = tf.tensor2d([[1, 0]]);
    const k = tf.tensor2d([[1, 0], [0, 1]]);
    const v = tf.tensor2d([[1, 2], [3, 4]]);
    const e = Math.E;
    const p0 = e / (e + 1);
    const out = arr(sdpa(q, k, v, 1));
    expect(out[0]).toBeCloseTo(p0 * 1 + (1 - p0) * 3, 6);
    expect(out[1]).toBeCloseTo(p0 * 2 + (1 - p0) * 4, 6);
    // scale applies to q before the product
    const half = arr(sdpa(q, k, v, 0.5));
    const ph = Math.exp(0.5) / (Math.exp(0.5) + 1);
    expect(half[0]).toBeCloseTo(ph + (1 - ph) * 3, 6);
    // a -1e9 bias removes key 1 exactly, like -inf in the block-diagonal mask
    expect(arr(sdpa(q, k, v, 1, tf.tensor2d([[0, -1e9]])))).toEqual([1, 2]);
  });
});

describe('fixed embeddings', () => {
  it('timestep features: [cos(t·f_k) (128), sin(t·f_k) (128)], f_k = exp(-ln(1e4)·k/128)', () => {
    const f = timestepFeatures([0, 1, 999]);
    expect(f.length).toBe(3 * 256);
    for (let k = 0; k < 128; k++) {
      expect(f[k]).toBe(1);
      expect(f[128 + k]).toBe(0);
    }
    expect(f[256]).toBeCloseTo(Math.cos(1), 6);
    expect(f[256 + 128]).toBeCloseTo(Math.sin(1), 6);
    const f127 = Math.exp((-Math.log(10000) * 127) / 128);
    expect(f[256 + 127]).toBeCloseTo(Math.cos(f127), 6);
    expect(f[512 + 128 + 1]).toBeCloseTo(Math.sin(999 * Math.exp(-Math.log(10000) / 128)), 3);
  });

  it('round half to even (Python round) for base_size', () => {
    expect([0.5, 1.5, 2.5, 3.5, 20.12, 19.9, 4.5].map(roundHalfEven)).toEqual([0, 2, 2, 4, 20, 20, 4]);
  });

  it('position-embedding geometry matches the spec table (scale, base_size, row/col steps)', () => {
    const rows: [number, number, number, number, number, number, number, number][] = [
      // pixels h, w; tokens H, W; scale; base; row step; col step
      [240, 426, 15, 27, 0.624512, 20, 2.135, 1.18611],
      [512, 512, 32, 32, 1.0, 32, 1, 1],
      [256, 256, 16, 16, 0.5, 16, 2, 2],
      [144, 256, 9, 16, 0.375, 12, 3.55556, 2],
      [360, 640, 23, 40, 0.9375, 30, 1.3913, 0.8],
      [720, 1280, 45, 80, 1.875, 60, 0.71111, 0.4],
    ];
    for (const [hp, wp, H, W, scale, base, rstep, cstep] of rows) {
      const g = posEmbedGeometry(H, W, hp, wp, 512);
      expect(g.scale).toBeCloseTo(scale, 5);
      expect(g.baseSize).toBe(base);
      expect(base / (H * g.scale)).toBeCloseTo(rstep, 3);
      expect(base / (W * g.scale)).toBeCloseTo(cstep, 3);
    }
  });

  it('2D sin/cos embedding: [sin, cos](column) first, then [sin, cos](row), row-major tokens', () => {
    const g = { h: 2, w: 3, scale: 0.5, baseSize: 2 };
    const D = 8; // 4 per axis: 2 frequencies, inv = [1, 10000^-0.5]
    const e = posEmbed2D(D, g);
    const inv1 = 1 / Math.pow(10000, 0.5);
    const col = (i: number) => (i / 0.5) * (2 / 3);
    const row = (j: number) => (j / 0.5) * (2 / 2);
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < 3; i++) {
        const t = (j * 3 + i) * D;
        const want = [
          Math.sin(col(i)), Math.sin(col(i) * inv1), Math.cos(col(i)), Math.cos(col(i) * inv1),
          Math.sin(row(j)), Math.sin(row(j) * inv1), Math.cos(row(j)), Math.cos(row(j) * inv1),
        ];
        want.forEach((v, k) => expect(e[t + k]).toBeCloseTo(v, 5));
      }
    }
  });
});
