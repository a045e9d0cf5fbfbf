/** Hand-computed tiny cases for each layer of the port (layouts, padding, norms, attention). */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf, initBackend } from '@opensora/core';
import { attentionBlock, conv2d, groupNorm, upsampleNearest2x } from '../src/layers.js';
import { fromTorchLayout, toTorchLayout } from '../src/layout.js';
import type { ParamSpec } from '../src/params.js';
import { attention as refAttention, groupNorm as refGroupNorm, type SD } from './reference.js';
import { maxAbsDiff } from './helpers.js';
import { Rng } from '@opensora/core';

beforeAll(async () => {
  await initBackend();
});

/** A weight getter holding torch-layout arrays converted to tfjs layout. */
function getter(entries: Array<[ParamSpec, number[]]>): (n: string) => tf.Tensor {
  const m = new Map<string, tf.Tensor>();
  for (const [spec, data] of entries) {
    const { data: d, shape } = fromTorchLayout(spec, Float32Array.from(data));
    m.set(spec.name, tf.tensor(d, shape));
  }
  return (n) => m.get(n)!;
}
const convSpec = (name: string, o: number, i: number, k: number): ParamSpec => ({ name: `${name}.weight`, shape: [o, i, k, k], kind: 'conv', fanIn: i * k * k });
const vec = (name: string, c: number): ParamSpec => ({ name, shape: [c], kind: 'vector', fanIn: 0 });
/** NCHW nested -> NHWC tensor for a single image. */
function nhwc(chw: number[][][]): tf.Tensor4D {
  return tf.transpose(tf.tensor4d([chw]), [0, 2, 3, 1]) as tf.Tensor4D;
}
function toCHW(x: tf.Tensor4D): number[][][] {
  return (tf.transpose(x, [0, 3, 1, 2]).arraySync() as number[][][][])[0]!;
}

describe('conv2d (PyTorch weights, NHWC activations)', () => {
  it('3x3 padding 1 is a cross-correlation with the torch [out,in,kh,kw] kernel', () => {
    // x = [[1,2],[3,4]], kernel 1..9 (row-major), bias 0.5.
    // out(0,0) = k[1][1]*1 + k[1][2]*2 + k[2][1]*3 + k[2][2]*4 + 0.5 = 5 + 12 + 24 + 36 + 0.5
    // out(1,1) = k[0][0]*1 + k[0][1]*2 + k[1][0]*3 + k[1][1]*4 + 0.5 = 1 + 4 + 12 + 20 + 0.5
    const w = getter([
      [convSpec('c', 1, 1, 3), [1, 2, 3, 4, 5, 6, 7, 8, 9]],
      [vec('c.bias', 1), [0.5]],
    ]);
    const y = toCHW(conv2d(w, 'c', nhwc([[[1, 2], [3, 4]]])));
    expect(y[0]![0]![0]).toBeCloseTo(77.5, 5);
    expect(y[0]![1]![1]).toBeCloseTo(37.5, 5);
    // out(0,1) = k[1][0]*1 + k[1][1]*2 + k[2][0]*3 + k[2][1]*4 = 4 + 10 + 21 + 32
    expect(y[0]![0]![1]).toBeCloseTo(67.5, 5);
  });

  it('keeps input and output channels apart ([out, in] order of the torch kernel)', () => {
    // 2 inputs, 3 outputs, 1x1: y_o = sum_i W[o][i] x_i + b_o.
    const w = getter([
      [convSpec('c', 3, 2, 1), [1, 10, 2, 20, 3, 30]],
      [vec('c.bias', 3), [0, 1, 2]],
    ]);
    const y = toCHW(conv2d(w, 'c', nhwc([[[1]], [[2]]]), '1x1'));
    expect(y.map((c) => c[0]![0])).toEqual([21, 43, 65]);
  });

  it("downsampler pads (0,1,0,1) then convolves with stride 2, like diffusers' Downsample2D", () => {
    // x = 1..16 on 4x4, all-ones kernel: out(i,j) = sum of the 3x3 window at (2i, 2j), zero beyond the edge.
    const w = getter([
      [convSpec('d', 1, 1, 3), Array(9).fill(1)],
      [vec('d.bias', 1), [0]],
    ]);
    const x = [[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]];
    const y = toCHW(conv2d(w, 'd', nhwc(x), 'down'));
    expect(y[0]).toEqual([
      [1 + 2 + 3 + 5 + 6 + 7 + 9 + 10 + 11, 3 + 4 + 7 + 8 + 11 + 12],
      [9 + 10 + 11 + 13 + 14 + 15, 11 + 12 + 15 + 16],
    ]);
    // Odd sizes floor: 5x7 -> 2x3 (as torch: floor((n + 1 - 3) / 2) + 1).
    expect(conv2d(w, 'd', tf.zeros([1, 5, 7, 1]) as tf.Tensor4D, 'down').shape).toEqual([1, 2, 3, 1]);
  });
});

describe('layout conversion', () => {
  it('round-trips conv and linear weights', () => {
    const conv: ParamSpec = { name: 'w', shape: [3, 2, 3, 3], kind: 'conv', fanIn: 18 };
    const lin: ParamSpec = { name: 'l', shape: [4, 3], kind: 'linear', fanIn: 3 };
    const a = Float32Array.from({ length: 54 }, (_, i) => i);
    const b = Float32Array.from({ length: 12 }, (_, i) => i);
    expect(Array.from(toTorchLayout(conv, fromTorchLayout(conv, a).data))).toEqual(Array.from(a));
    expect(Array.from(toTorchLayout(lin, fromTorchLayout(lin, b).data))).toEqual(Array.from(b));
    // linear [out=4, in=3] -> [in, out]: element (o=1, i=2) = 1*3+2 = 5 lands at [2][1].
    expect(fromTorchLayout(lin, b).data[2 * 4 + 1]).toBe(5);
  });
});

describe('groupNorm', () => {
  it('normalises over (group channels, H, W) with biased variance and eps 1e-6, then the affine', () => {
    // 4 channels, 2 groups, 1x2 pixels. Group 0 = channels 0,1 = {0, 2, 4, 6}: mean 3, var 5.
    // Group 1 = channels 2,3 = {1, 1, 1, 1}: var 0 -> (x - m) / sqrt(eps) = 0.
    const w = getter([
      [vec('n.weight', 4), [1, 2, 1, 1]],
      [vec('n.bias', 4), [0, 0, 0.5, -1]],
    ]);
    const y = toCHW(groupNorm(w, 'n', nhwc([[[0, 2]], [[4, 6]], [[1, 1]], [[1, 1]]]), 2, 1e-6, false));
    const s = Math.sqrt(5 + 1e-6);
    expect(y[0]![0]![0]).toBeCloseTo(-3 / s, 5);
    expect(y[0]![0]![1]).toBeCloseTo(-1 / s, 5);
    expect(y[1]![0]![0]).toBeCloseTo((2 * 1) / s, 5);
    expect(y[1]![0]![1]).toBeCloseTo((2 * 3) / s, 5);
    expect(y[2]![0]).toEqual([0.5, 0.5]);
    expect(y[3]![0]).toEqual([-1, -1]);
    // With SiLU: y * sigmoid(y).
    const ys = toCHW(groupNorm(w, 'n', nhwc([[[0, 2]], [[4, 6]], [[1, 1]], [[1, 1]]]), 2, 1e-6, true));
    expect(ys[2]![0]![0]).toBeCloseTo(0.5 / (1 + Math.exp(-0.5)), 6);
  });
});

describe('groupNorm on near-constant input (flat-colour frames)', () => {
  it('stays accurate when the mean dwarfs the spread (two-pass variance)', () => {
    const [n, h, wd, c, g] = [2, 12, 10, 8, 4];
    const rng = new Rng(5);
    const xd = Float32Array.from({ length: n * c * h * wd }, () => 50 + 1e-3 * rng.normal()); // NCHW
    const gamma = Array.from({ length: c }, (_, i) => 0.5 + i / 8);
    const beta = Array.from({ length: c }, (_, i) => i / 10 - 0.3);
    const w = getter([
      [vec('n.weight', c), gamma],
      [vec('n.bias', c), beta],
    ]);
    const x = tf.transpose(tf.tensor4d(xd, [n, c, h, wd]), [0, 2, 3, 1]) as tf.Tensor4D;
    const y = tf.transpose(groupNorm(w, 'n', x, g, 1e-6, false), [0, 3, 1, 2]).dataSync();
    const size = c * h * wd;
    for (let f = 0; f < n; f++) {
      const ref = refGroupNorm({ c, h, w: wd, d: Float64Array.from(xd.subarray(f * size, (f + 1) * size)) }, gamma, beta, g, false).d;
      // float32 input spacing at 50 is 4e-6 (0.4% of the 1e-3 spread): compare at that resolution.
      expect(maxAbsDiff(y.subarray(f * size, (f + 1) * size), ref)).toBeLessThan(2e-2);
    }
  });
});

describe('mid-block attention', () => {
  it('single head over positions with scale 1/sqrt(C), plus the residual', () => {
    // C = 1, two positions x = [0, 2]: the GroupNorm gives [-1, 1]/sqrt(1 + 1e-6); identity q, k, v, out.
    // scores = n n^T = [[1, -1], [-1, 1]] (times 1/(1+eps)); row 0 softmax = [e, e^-1]/(e + e^-1):
    // out_0 = -tanh(1), out_1 = +tanh(1) (to ~1e-6).
    const names = ['to_q', 'to_k', 'to_v', 'to_out.0'];
    const entries: Array<[ParamSpec, number[]]> = [
      [vec('a.group_norm.weight', 1), [1]],
      [vec('a.group_norm.bias', 1), [0]],
    ];
    for (const n of names) {
      entries.push([{ name: `a.${n}.weight`, shape: [1, 1], kind: 'linear', fanIn: 1 }, [1]]);
      entries.push([vec(`a.${n}.bias`, 1), [0]]);
    }
    const y = toCHW(attentionBlock(getter(entries), 'a', nhwc([[[0, 2]]]), 1, 1e-6));
    expect(y[0]![0]![0]).toBeCloseTo(0 - Math.tanh(1), 5);
    expect(y[0]![0]![1]).toBeCloseTo(2 + Math.tanh(1), 5);
  });
});

describe('mid-block attention in query blocks', () => {
  it('gives the same result whatever the block size, for several frames (vs the loop reference)', () => {
    const c = 8;
    const rng = new Rng(3);
    const sd: SD = {
      'a.group_norm.weight': { shape: [c], data: rng.fillUniform(new Float32Array(c), 0.5, 1.5) },
      'a.group_norm.bias': { shape: [c], data: rng.fillUniform(new Float32Array(c), -0.5, 0.5) },
    };
    for (const n of ['to_q', 'to_k', 'to_v', 'to_out.0']) {
      sd[`a.${n}.weight`] = { shape: [c, c], data: rng.fillUniform(new Float32Array(c * c), -0.6, 0.6) };
      sd[`a.${n}.bias`] = { shape: [c], data: rng.fillUniform(new Float32Array(c), -0.2, 0.2) };
    }
    const entries: Array<[ParamSpec, number[]]> = Object.entries(sd).map(([k, v]) => [
      { name: k, shape: v.shape, kind: v.shape.length === 2 ? 'linear' : 'vector', fanIn: c },
      Array.from(v.data),
    ]);
    const w = getter(entries);
    const [n, h, wd] = [2, 5, 7];
    const xd = rng.fillUniform(new Float32Array(n * c * h * wd), -2, 2); // NCHW
    const x = tf.transpose(tf.tensor4d(xd, [n, c, h, wd]), [0, 2, 3, 1]) as tf.Tensor4D;
    const outs = [1 << 22, 35 * 4, 35 * 3 + 1, 1].map((m) => tf.transpose(attentionBlock(w, 'a', x, 2, 1e-6, m), [0, 3, 1, 2]).dataSync());
    for (let f = 0; f < n; f++) {
      const img = { c, h, w: wd, d: Float64Array.from(xd.subarray(f * c * h * wd, (f + 1) * c * h * wd)) };
      const ref = refAttention(sd, 'a', img, 2).d;
      for (const o of outs) expect(maxAbsDiff(o.subarray(f * c * h * wd, (f + 1) * c * h * wd), ref)).toBeLessThan(1e-5);
    }
  });
});

describe('upsampleNearest2x', () => {
  it('repeats each pixel into a 2x2 block (F.interpolate nearest, scale 2)', () => {
    const y = toCHW(upsampleNearest2x(nhwc([[[1, 2], [3, 4]]])));
    expect(y[0]).toEqual([
      [1, 1, 2, 2],
      [1, 1, 2, 2],
      [3, 3, 4, 4],
      [3, 3, 4, 4],
    ]);
  });
});
