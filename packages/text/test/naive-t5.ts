/**
 * A deliberately naive T5 encoder in plain float64 loops, written from the transformers formulas,
 * independent of the tfjs implementation (no shared code but the bucket function, which has its
 * own hand-derived tests). Used as the "hand-computed" reference for small configs.
 */
import type { T5Config, WeightRecord } from '../src/index.js';
import { relativePositionBucket } from '../src/index.js';

type Mat = number[][];

function get(w: WeightRecord, k: string): { shape: number[]; data: Float32Array } {
  const t = w[k];
  if (!t) throw new Error(`naive T5: no ${k}`);
  return t;
}

/** y = x W^T for W stored [out, in]. */
function linear(x: number[], w: { shape: number[]; data: Float32Array }): number[] {
  const [out, inn] = w.shape as [number, number];
  const y = new Array<number>(out).fill(0);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < inn; i++) s += w.data[o * inn + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

function rms(x: number[], w: Float32Array, eps: number): number[] {
  const v = x.reduce((a, b) => a + b * b, 0) / x.length;
  const r = 1 / Math.sqrt(v + eps);
  return x.map((xi, i) => xi * r * w[i]!);
}

export function geluNew(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

export function naiveT5(c: T5Config, w: WeightRecord, ids: number[], mask: number[]): Mat {
  const L = ids.length;
  const D = c.dModel;
  const H = c.numHeads;
  const dk = c.dKv;
  const emb = get(w, 'shared.weight');
  let h: Mat = ids.map((id) => Array.from(emb.data.subarray(id * D, (id + 1) * D)));
  const rel = get(w, 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight');
  // bias[head][i][j] = rel[bucket(j - i)][head] + (mask[j] ? 0 : -inf)
  const bias = (head: number, i: number, j: number) =>
    rel.data[relativePositionBucket(j - i, true, c.relativeAttentionNumBuckets, c.relativeAttentionMaxDistance) * H + head]! + (mask[j] ? 0 : -1e30);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `encoder.block.${l}.layer`;
    const n = h.map((x) => rms(x, get(w, `${p}.0.layer_norm.weight`).data, c.layerNormEpsilon));
    const q = n.map((x) => linear(x, get(w, `${p}.0.SelfAttention.q.weight`)));
    const k = n.map((x) => linear(x, get(w, `${p}.0.SelfAttention.k.weight`)));
    const v = n.map((x) => linear(x, get(w, `${p}.0.SelfAttention.v.weight`)));
    const ctx: Mat = Array.from({ length: L }, () => new Array<number>(H * dk).fill(0));
    for (let hd = 0; hd < H; hd++) {
      for (let i = 0; i < L; i++) {
        const s: number[] = [];
        for (let j = 0; j < L; j++) {
          let dot = 0;
          for (let e = 0; e < dk; e++) dot += q[i]![hd * dk + e]! * k[j]![hd * dk + e]!;
          s.push(dot + bias(hd, i, j)); // no 1/sqrt(dk)
        }
        const m = Math.max(...s);
        const ex = s.map((x) => Math.exp(x - m));
        const z = ex.reduce((a, b) => a + b, 0);
        for (let j = 0; j < L; j++) for (let e = 0; e < dk; e++) ctx[i]![hd * dk + e]! += (ex[j]! / z) * v[j]![hd * dk + e]!;
      }
    }
    h = h.map((x, i) => {
      const o = linear(ctx[i]!, get(w, `${p}.0.SelfAttention.o.weight`));
      return x.map((xi, d) => xi + o[d]!);
    });
    h = h.map((x) => {
      const nn = rms(x, get(w, `${p}.1.layer_norm.weight`).data, c.layerNormEpsilon);
      let f: number[];
      if (c.isGatedAct) {
        const g = linear(nn, get(w, `${p}.1.DenseReluDense.wi_0.weight`)).map(geluNew);
        const lin = linear(nn, get(w, `${p}.1.DenseReluDense.wi_1.weight`));
        f = g.map((gi, i) => gi * lin[i]!);
      } else {
        f = linear(nn, get(w, `${p}.1.DenseReluDense.wi.weight`)).map((z) => Math.max(0, z));
      }
      const o = linear(f, get(w, `${p}.1.DenseReluDense.wo.weight`));
      return x.map((xi, d) => xi + o[d]!);
    });
  }
  return h.map((x) => rms(x, get(w, 'encoder.final_layer_norm.weight').data, c.layerNormEpsilon));
}
