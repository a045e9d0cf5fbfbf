/**
 * Model-based scorers with tiny random CLIP and aesthetic-MLP weights written here, checked
 * against a plain-JS forward pass of the Hugging Face CLIP semantics (independent of tfjs).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@opensora/core';
import { ClipModel, aestheticScorer, clipPreprocess, matchScorer, randomClipWeights, readScorerInput, runScorer, synthesizeDataset, tokenizerFromFile, writeRandomClip, type SynthResult } from '../src/index.js';
import { tempDir } from './helpers.js';

const tmp = tempDir('osdata-clip-');
// The same seeded weights that writeRandomClip puts in the files (checked below against its files).
const { clipWeights: W, mlpWeights: MLP, config } = randomClipWeights({ seed: 123 });
const { hiddenSize: D, patchSize: P, imageSize: S, projectionDim: PROJ, numLayers: LAYERS, numHeads: HEADS, intermediateSize: FF, maxPositions: TPOS, vocabSize: VOCAB } = config;
const G = S / P;

// ---- plain-JS reference of HF CLIP (row-major arrays) ----
const get = (k: string) => W[k]!.data;
function linear(x: Float64Array, n: number, k: string, inDim: number, outDim: number, bias = true): Float64Array {
  const w = get(`${k}.weight`);
  const b = bias ? get(`${k}.bias`) : null;
  const y = new Float64Array(n * outDim);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < outDim; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i]! * w[o * inDim + i]!;
      y[r * outDim + o] = s;
    }
  return y;
}
function ln(x: Float64Array, n: number, k: string, wk = `${k}.weight`, bk = `${k}.bias`): Float64Array {
  const w = get(wk);
  const b = get(bk);
  const y = new Float64Array(x.length);
  for (let r = 0; r < n; r++) {
    let m = 0;
    for (let i = 0; i < D; i++) m += x[r * D + i]!;
    m /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (x[r * D + i]! - m) ** 2;
    v /= D;
    for (let i = 0; i < D; i++) y[r * D + i] = ((x[r * D + i]! - m) / Math.sqrt(v + 1e-5)) * w[i]! + b[i]!;
  }
  return y;
}
function encoderRef(x: Float64Array, L: number, prefix: string, causal: boolean): Float64Array {
  const hd = D / HEADS;
  for (let l = 0; l < LAYERS; l++) {
    const p = `${prefix}encoder.layers.${l}`;
    const h = ln(x, L, `${p}.layer_norm1`);
    const q = linear(h, L, `${p}.self_attn.q_proj`, D, D).map((v) => v * hd ** -0.5);
    const k = linear(h, L, `${p}.self_attn.k_proj`, D, D);
    const v = linear(h, L, `${p}.self_attn.v_proj`, D, D);
    const o = new Float64Array(L * D);
    for (let hh = 0; hh < HEADS; hh++)
      for (let i = 0; i < L; i++) {
        const sc = new Float64Array(L);
        let mx = -Infinity;
        for (let j = 0; j < L; j++) {
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[i * D + hh * hd + d]! * k[j * D + hh * hd + d]!;
          if (causal && j > i) s = -Infinity;
          sc[j] = s;
          mx = Math.max(mx, s);
        }
        let z = 0;
        for (let j = 0; j < L; j++) z += (sc[j] = Math.exp(sc[j]! - mx));
        for (let d = 0; d < hd; d++) {
          let s = 0;
          for (let j = 0; j < L; j++) s += (sc[j]! / z) * v[j * D + hh * hd + d]!;
          o[i * D + hh * hd + d] = s;
        }
      }
    const ao = linear(o, L, `${p}.self_attn.out_proj`, D, D);
    for (let i = 0; i < x.length; i++) x[i] += ao[i]!;
    const h2 = ln(x, L, `${p}.layer_norm2`);
    const f1 = linear(h2, L, `${p}.mlp.fc1`, D, FF).map((u) => u / (1 + Math.exp(-1.702 * u)));
    const f2 = linear(f1, L, `${p}.mlp.fc2`, FF, D);
    for (let i = 0; i < x.length; i++) x[i] += f2[i]!;
  }
  return x;
}
function imageRef(px: Float32Array): Float64Array {
  const L = G * G + 1;
  const x = new Float64Array(L * D);
  const pw = get('vision_model.embeddings.patch_embedding.weight');
  for (let d = 0; d < D; d++) x[d] = get('vision_model.embeddings.class_embedding')[d]!;
  for (let gy = 0; gy < G; gy++)
    for (let gx = 0; gx < G; gx++)
      for (let d = 0; d < D; d++) {
        let s = 0;
        for (let c = 0; c < 3; c++) for (let ky = 0; ky < P; ky++) for (let kx = 0; kx < P; kx++) s += px[c * S * S + (gy * P + ky) * S + gx * P + kx]! * pw[((d * 3 + c) * P + ky) * P + kx]!;
        x[(1 + gy * G + gx) * D + d] = s;
      }
  const pos = get('vision_model.embeddings.position_embedding.weight');
  for (let i = 0; i < x.length; i++) x[i] += pos[i]!;
  let h = ln(x, L, 'vision_model.pre_layrnorm');
  h = encoderRef(h, L, 'vision_model.', false);
  const pooled = ln(h.slice(0, D), 1, 'vision_model.post_layernorm');
  return linear(pooled, 1, 'visual_projection', D, PROJ, false);
}
function textRef(ids: number[]): Float64Array {
  const L = ids.length;
  const x = new Float64Array(L * D);
  const te = get('text_model.embeddings.token_embedding.weight');
  const pe = get('text_model.embeddings.position_embedding.weight');
  ids.forEach((t, i) => {
    for (let d = 0; d < D; d++) x[i * D + d] = te[t * D + d]! + pe[i * D + d]!;
  });
  let h = encoderRef(x, L, 'text_model.', true);
  h = ln(h, L, 'text_model.final_layer_norm');
  const eos = ids.indexOf(Math.max(...ids));
  return linear(h.slice(eos * D, eos * D + D), 1, 'text_projection', D, PROJ, false);
}
const norm = (v: ArrayLike<number>) => {
  const s = Math.sqrt(Array.from(v).reduce((a, b) => a + b * b, 0));
  return Array.from(v, (x) => x / s);
};
function mlpRef(e: number[]): number {
  let h = e;
  for (const i of [0, 2, 4, 6, 7]) {
    const [b, a] = MLP[`layers.${i}.weight`]!.shape as [number, number];
    const w = MLP[`layers.${i}.weight`]!.data;
    const bb = MLP[`layers.${i}.bias`]!.data;
    h = Array.from({ length: b }, (_, o) => bb[o]! + h.reduce((s, x, j) => s + x * w[o * a + j]!, 0));
  }
  return h[0]!;
}

let synth: SynthResult;
let clipPath: string;
let mlpPath: string;
let tokPath: string;

beforeAll(async () => {
  await initBackend('cpu');
  const files = await writeRandomClip(tmp.dir, { seed: 123 });
  clipPath = files.clip;
  mlpPath = files.mlp;
  tokPath = files.tokenizer;
  expect(Object.keys(files.clipWeights)).toEqual(Object.keys(W));
  synth = await synthesizeDataset({ outDir: tmp.dir, seed: 8, numVideos: 2, numImages: 1, sizes: [[32, 48]], imageSizes: [[40, 40]], lengths: [12], fps: [12], cutFraction: 0 });
});
afterAll(() => tmp.cleanup());

describe('CLIP-based scorers (tiny random weights)', () => {
  it('infers the config and matches a plain-JS CLIP forward pass', async () => {
    const clip = ClipModel.load(clipPath);
    expect(clip.config.vision).toMatchObject({ hiddenSize: D, patchSize: P, imageSize: S, numLayers: LAYERS, numHeads: HEADS, intermediateSize: FF });
    expect(clip.config.text).toMatchObject({ vocabSize: VOCAB, maxPositions: TPOS, numLayers: LAYERS });
    expect(clip.config.projectionDim).toBe(PROJ);
    expect(clip.logitScale).toBeCloseTo(100, 3);
    const input = await readScorerInput(path.join(tmp.dir, synth.rows[0]!.path), synth.rows[0]!, { frames: { points: [0.5] } });
    const px = await clipPreprocess(input.frames, S);
    const got = clip.encodeImages(px, 1);
    const want = imageRef(px);
    for (let i = 0; i < PROJ; i++) expect(got[i]!).toBeCloseTo(want[i]!, 4);
    const ids = [1, 4, 14, 18, 19, VOCAB - 1];
    const gt = clip.encodeText([ids]);
    const wt = textRef(ids);
    for (let i = 0; i < PROJ; i++) expect(gt[i]!).toBeCloseTo(wt[i]!, 4);
    clip.dispose();
  });

  it('aesthetic scorer: mean of the MLP over the CLIP embeddings of frames at 0.1/0.5/0.9, resumable like every scorer', async () => {
    const scorer = aestheticScorer({ clip: clipPath, mlp: mlpPath });
    const out = path.join(tmp.dir, 'aes.csv');
    const res = await runScorer(synth.csvPath, scorer, { output: out });
    expect(res.errors).toEqual([]);
    for (const [i, row] of res.rows.entries()) {
      const input = await readScorerInput(path.join(tmp.dir, row.path), synth.rows[i]!, { frames: { points: [0.1, 0.5, 0.9] } });
      expect(input.frames.length).toBe(synth.items[i]!.kind === 'image' ? 1 : 3);
      const px = await clipPreprocess(input.frames, S);
      const per = input.frames.map((_, k) => mlpRef(norm(imageRef(px.subarray(k * 3 * S * S, (k + 1) * 3 * S * S)))));
      expect(row.aes!).toBeCloseTo(per.reduce((a, b) => a + b, 0) / per.length, 4);
    }
    const again = await runScorer(synth.csvPath, scorer, { output: out });
    expect(again.skipped).toBe(3);
    await scorer.dispose?.();
  });

  it('match scorer: 100 x cosine(middle frame, caption tokens from a tokenizer.json)', async () => {
    const tokenize = tokenizerFromFile(tokPath);
    expect(tokenize('A red circle moving left')).toEqual([1, 2, 4, 14, 18, 19, VOCAB - 1]);
    const scorer = matchScorer({ clip: clipPath, tokenize });
    const res = await runScorer(synth.csvPath, scorer);
    expect(res.errors).toEqual([]);
    for (const [i, row] of res.rows.entries()) {
      const input = await readScorerInput(path.join(tmp.dir, row.path), synth.rows[i]!, { frames: { points: [0.5] } });
      const img = norm(imageRef(await clipPreprocess(input.frames, S)));
      const txt = norm(textRef(tokenize(synth.rows[i]!.text!)));
      const cos = img.reduce((a, v, k) => a + v * txt[k]!, 0);
      expect(row.match!).toBeCloseTo(100 * cos, 3);
      expect(Math.abs(row.match!)).toBeLessThanOrEqual(100);
    }
    await scorer.dispose?.();
  });
});
