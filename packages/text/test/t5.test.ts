import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, saveSafetensors, tf } from '@opensora/core';
import {
  T5EncoderModel,
  T5TextEncoder,
  T5WeightsError,
  T5_V1_1_XXL_CONFIG,
  countT5EncoderParameters,
  createTextEncoder,
  parseT5Config,
  randomT5Weights,
  t5ConfigToJson,
  t5EncoderParameterShapes,
  weightsFromRecord,
} from '../src/index.js';
import type { T5Config, WeightRecord } from '../src/index.js';
import { naiveT5 } from './naive-t5.js';
import { tinyT5Config, writeTinyT5 } from './helpers.js';

let tmp: string;
beforeAll(async () => {
  await initBackend();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'opensora-text-t5-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('T5 config', () => {
  it('the official T5 v1.1 XXL encoder config reports its parameter count from shapes alone', () => {
    expect(countT5EncoderParameters(T5_V1_1_XXL_CONFIG)).toBe(4_762_310_656);
    const shapes = new Map(t5EncoderParameterShapes(T5_V1_1_XXL_CONFIG));
    expect(shapes.get('shared.weight')).toEqual([32128, 4096]);
    expect(shapes.get('encoder.block.0.layer.0.SelfAttention.q.weight')).toEqual([4096, 4096]);
    expect(shapes.get('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight')).toEqual([32, 64]);
    expect(shapes.has('encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight')).toBe(false);
    expect(shapes.get('encoder.block.23.layer.1.DenseReluDense.wi_1.weight')).toEqual([10240, 4096]);
    expect(shapes.get('encoder.block.23.layer.1.DenseReluDense.wo.weight')).toEqual([4096, 10240]);
    expect(shapes.size).toBe(1 + 24 * 9 + 1 + 1);
  });

  it('parses the XXL config.json as transformers does', () => {
    const json = {
      architectures: ['T5EncoderModel'],
      d_ff: 10240,
      d_kv: 64,
      d_model: 4096,
      decoder_start_token_id: 0,
      dropout_rate: 0.1,
      eos_token_id: 1,
      feed_forward_proj: 'gated-gelu',
      initializer_factor: 1.0,
      is_encoder_decoder: true,
      layer_norm_epsilon: 1e-6,
      model_type: 't5',
      num_decoder_layers: 24,
      num_heads: 64,
      num_layers: 24,
      output_past: true,
      pad_token_id: 0,
      relative_attention_num_buckets: 32,
      tie_word_embeddings: false,
      vocab_size: 32128,
    };
    expect(parseT5Config(json)).toEqual(T5_V1_1_XXL_CONFIG);
    expect(parseT5Config(t5ConfigToJson(T5_V1_1_XXL_CONFIG))).toEqual(T5_V1_1_XXL_CONFIG);
    // T5 v1.0 ("relu", not gated)
    const v10 = parseT5Config({ ...json, feed_forward_proj: 'relu' });
    expect(v10.isGatedAct).toBe(false);
    expect(v10.denseActFn).toBe('relu');
    expect(() => parseT5Config({ ...json, d_model: undefined })).toThrow(/'d_model' is missing/);
    expect(() => parseT5Config({ ...json, feed_forward_proj: 'gated-gelu-x' })).toThrow(/feed_forward_proj/);
  });
});

describe('T5 encoder maths', () => {
  it('a one-token, one-layer T5 against values worked by hand', () => {
    // dModel 2, one head of size 1, dFf 1. With one token softmax is 1, so attention = o(v(norm(x))).
    const c: T5Config = tinyT5Config({ vocabSize: 3, dModel: 2, dKv: 1, dFf: 1, numLayers: 1, numHeads: 1 });
    const f = (shape: number[], v: number[]) => ({ shape, data: Float32Array.from(v) });
    const w: WeightRecord = {
      'shared.weight': f([3, 2], [3, 4, 0, 0, 0, 0]),
      'encoder.block.0.layer.0.SelfAttention.q.weight': f([1, 2], [0.3, -0.7]),
      'encoder.block.0.layer.0.SelfAttention.k.weight': f([1, 2], [0.2, 0.5]),
      'encoder.block.0.layer.0.SelfAttention.v.weight': f([1, 2], [1, 0]),
      'encoder.block.0.layer.0.SelfAttention.o.weight': f([2, 1], [1, 2]),
      'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight': f([32, 1], new Array(32).fill(0.25)),
      'encoder.block.0.layer.0.layer_norm.weight': f([2], [1, 1]),
      'encoder.block.0.layer.1.DenseReluDense.wi_0.weight': f([1, 2], [1, 0]),
      'encoder.block.0.layer.1.DenseReluDense.wi_1.weight': f([1, 2], [0, 1]),
      'encoder.block.0.layer.1.DenseReluDense.wo.weight': f([2, 1], [1, 0]),
      'encoder.block.0.layer.1.layer_norm.weight': f([2], [1, 1]),
      'encoder.final_layer_norm.weight': f([2], [1, 1]),
    };
    // x = [3, 4]; rms = sqrt(12.5) -> n = [0.848528, 1.131371]; v = 0.848528; h1 = x + [v, 2v] = [3.848528, 5.697056]
    // rms(h1) = 4.861469 -> n1 = [0.791640, 1.171881]; ff = gelu_new(0.791640) * 1.171881 = 0.621922 * 1.171881 = 0.728819
    // h2 = [4.577347, 5.697056]; final rms = 5.167612 -> [0.885775, 1.102453]
    const m = T5EncoderModel.fromWeights(c, weightsFromRecord(w));
    const out = m.forward(tf.tensor2d([[0]], [1, 1], 'int32'), tf.tensor2d([[1]], [1, 1], 'int32'));
    const got = out.dataSync();
    expect(got[0]).toBeCloseTo(0.8857749616, 5);
    expect(got[1]).toBeCloseTo(1.1024530115, 5);
    out.dispose();
    m.dispose();
  });

  it('a tiny random T5 (2 layers, 3 heads, gated-gelu) matches a naive float64 implementation, masks included', () => {
    const c = tinyT5Config();
    const weights = randomT5Weights(c, 7);
    const model = T5EncoderModel.fromWeights(c, weightsFromRecord(weights));
    const ids = [
      [3, 4, 5, 7, 1, 0, 0, 0, 0, 0],
      [9, 10, 11, 12, 13, 14, 15, 16, 17, 1],
      [1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ];
    const mask = ids.map((r) => r.map((_, i) => (i <= r.indexOf(1) ? 1 : 0)));
    const out = model.forward(tf.tensor2d(ids, [3, 10], 'int32'), tf.tensor2d(mask, [3, 10], 'int32'));
    expect(out.shape).toEqual([3, 10, 16]);
    const got = out.dataSync();
    for (let b = 0; b < 3; b++) {
      const ref = naiveT5(c, weights, ids[b]!, mask[b]!).flat();
      expect(maxAbsDiff(got.subarray(b * 160, (b + 1) * 160), ref)).toBeLessThan(1e-5);
    }
    out.dispose();
    model.dispose();
  });

  it('relative attention bias reaches across the bucket boundaries (L = 100) and v1.0 relu FFN works', () => {
    const c = tinyT5Config({ numLayers: 1, isGatedAct: false, denseActFn: 'relu', dModel: 8, numHeads: 2, dKv: 3, dFf: 5 });
    const weights = randomT5Weights(c, 3);
    const model = T5EncoderModel.fromWeights(c, weightsFromRecord(weights));
    const L = 100;
    const ids = Array.from({ length: L }, (_, i) => (i * 7) % c.vocabSize);
    const mask = ids.map(() => 1);
    const out = model.forward(tf.tensor2d([ids], [1, L], 'int32'), tf.tensor2d([mask], [1, L], 'int32'));
    const ref = naiveT5(c, weights, ids, mask).flat();
    expect(maxAbsDiff(out.dataSync(), ref)).toBeLessThan(1e-5);
    out.dispose();
    model.dispose();
  });
});

describe('T5TextEncoder from a Hugging Face folder', () => {
  it('loads transformers key names, pads to modelMaxLength and masks padding', async () => {
    const dir = path.join(tmp, 'tiny');
    const c = tinyT5Config();
    const weights = await writeTinyT5(dir, c, 11);
    const enc = await T5TextEncoder.fromPretrained(dir);
    expect(enc.modelMaxLength).toBe(200);
    expect(enc.captionChannels).toBe(16);
    const prompts = ['a red ball', 'the cat runs on the grass in snow', '', 'zebra'];
    const { embeddings, mask } = enc.encode(prompts);
    expect(embeddings.shape).toEqual([4, 1, 200, 16]);
    expect(mask.shape).toEqual([4, 200]);
    expect(mask.dtype).toBe('int32');
    const m = mask.arraySync() as number[][];
    // 3 words + EOS; 8 words + EOS; just EOS; "▁" + 5 letters + EOS
    expect(m.map((r) => r.reduce((a, b) => a + b, 0))).toEqual([4, 9, 1, 7]);
    for (const r of m) expect(r.indexOf(0)).toBe(r.reduce((a, b) => a + b, 0)); // ones first, then zeros
    const tok = enc.tokenize(prompts);
    expect(Array.from(tok.ids.subarray(0, 6))).toEqual([3, 4, 5, 1, 0, 0]);
    // each row equals the naive encoder run on that row alone, at its real tokens
    const e = embeddings.dataSync();
    for (let b = 0; b < 4; b++) {
      const n = tok.lengths[b]!;
      const ids = Array.from(tok.ids.subarray(b * 200, b * 200 + n));
      const ref = naiveT5(c, weights, ids, ids.map(() => 1)).flat();
      expect(maxAbsDiff(e.subarray(b * 200 * 16, (b * 200 + n) * 16), ref)).toBeLessThan(1e-5);
    }
    embeddings.dispose();
    mask.dispose();
    enc.dispose();
  });

  it('truncates at modelMaxLength keeping the EOS, as the reference tokenizer call does', async () => {
    const dir = path.join(tmp, 'trunc');
    await writeTinyT5(dir, tinyT5Config(), 12);
    const enc = await createTextEncoder({ type: 't5', path: dir, modelMaxLength: 6 });
    const long = 'the cat runs on the grass in snow over the sea';
    const t = (enc as T5TextEncoder).tokenize([long, 'a red ball']);
    expect(t.truncated).toEqual([true, false]);
    // first 5 content tokens, then </s>
    expect(Array.from(t.ids)).toEqual([11, 7, 9, 10, 11, 1, 3, 4, 5, 1, 0, 0]);
    expect(Array.from(t.mask)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    const out = enc.encode([long]);
    expect(out.embeddings.shape).toEqual([1, 1, 6, 16]);
    expect(Array.from(out.mask.dataSync())).toEqual([1, 1, 1, 1, 1, 1]);
    out.embeddings.dispose();
    out.mask.dispose();
    enc.dispose();
  });

  it('batches larger than maxBatchSize give the same rows', async () => {
    const dir = path.join(tmp, 'chunks');
    await writeTinyT5(dir, tinyT5Config(), 13);
    const a = await T5TextEncoder.fromPretrained(dir, { modelMaxLength: 12, maxBatchSize: 2 });
    const b = await T5TextEncoder.fromPretrained(dir, { modelMaxLength: 12, maxBatchSize: 8 });
    const prompts = ['a red ball', 'blue cat', 'dog on snow', 'sunset over the sea', 'x'];
    const oa = a.encode(prompts);
    const ob = b.encode(prompts);
    expect(maxAbsDiff(oa.embeddings.dataSync(), ob.embeddings.dataSync())).toBeLessThan(1e-6);
    for (const t of [oa.embeddings, oa.mask, ob.embeddings, ob.mask]) t.dispose();
    a.dispose();
    b.dispose();
  });

  it('trimPadding (default) only changes the padded positions: zeros instead of the reference features', async () => {
    const dir = path.join(tmp, 'trim');
    const c = tinyT5Config();
    const weights = await writeTinyT5(dir, c, 18);
    const full = await T5TextEncoder.fromPretrained(dir, { modelMaxLength: 24, trimPadding: false, maxBatchSize: 2 });
    const trim = await T5TextEncoder.fromPretrained(dir, { modelMaxLength: 24, maxBatchSize: 2 });
    const prompts = ['a red ball', 'the cat runs on the grass in snow', 'dog', 'sunset over the sea'];
    const of = full.encode(prompts);
    const ot = trim.encode(prompts);
    const ef = of.embeddings.dataSync();
    const et = ot.embeddings.dataSync();
    const m = of.mask.dataSync();
    expect(Array.from(ot.mask.dataSync())).toEqual(Array.from(m));
    let realDiff = 0;
    let padFullMax = 0;
    let padTrimMax = 0;
    for (let i = 0; i < m.length; i++) {
      for (let d = 0; d < 16; d++) {
        const a = ef[i * 16 + d]!;
        const b = et[i * 16 + d]!;
        if (m[i]) realDiff = Math.max(realDiff, Math.abs(a - b));
        else {
          padFullMax = Math.max(padFullMax, Math.abs(a));
          padTrimMax = Math.max(padTrimMax, Math.abs(b));
        }
      }
    }
    expect(realDiff).toBeLessThan(1e-5);
    expect(padTrimMax).toBe(0);
    expect(padFullMax).toBeGreaterThan(0.1); // the reference computes features at padding too
    // and the full output at a padded position is what the naive encoder gives for the whole row
    const row = Array.from(full.tokenize(['dog']).ids);
    const ref = naiveT5(c, weights, row, row.map((_, i) => (i < 2 ? 1 : 0))).flat();
    expect(maxAbsDiff(ef.subarray(2 * 24 * 16, 3 * 24 * 16), ref)).toBeLessThan(1e-5);
    for (const t of [of.embeddings, of.mask, ot.embeddings, ot.mask]) t.dispose();
    full.dispose();
    trim.dispose();
  });

  it('names the missing key, and misshapen ones, in the error', async () => {
    const dir = path.join(tmp, 'missing');
    await writeTinyT5(dir, tinyT5Config(), 14, (w) => {
      const o = { ...w };
      delete o['encoder.block.1.layer.1.DenseReluDense.wi_1.weight'];
      o['encoder.block.0.layer.0.SelfAttention.o.weight'] = { shape: [16, 11], data: new Float32Array(16 * 11) };
      return o;
    });
    let err: unknown;
    try {
      await T5TextEncoder.fromPretrained(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(T5WeightsError);
    const e = err as T5WeightsError;
    expect(e.code).toBe('E_STATE_DICT');
    expect(e.message).toContain('encoder.block.1.layer.1.DenseReluDense.wi_1.weight');
    expect(e.message).toContain('encoder.block.0.layer.0.SelfAttention.o.weight is [16, 11], expected [16, 12]');
    expect(e.missing).toEqual(['encoder.block.1.layer.1.DenseReluDense.wi_1.weight']);
  });

  it('loads a sharded index and the encoder.embed_tokens.weight alias, ignoring decoder keys', async () => {
    const dir = path.join(tmp, 'sharded');
    const c = tinyT5Config();
    const w = await writeTinyT5(dir, c, 15);
    rmSync(path.join(dir, 'model.safetensors'));
    const keys = Object.keys(w).sort();
    const half = Math.floor(keys.length / 2);
    const weightMap: Record<string, string> = {};
    const shard = async (name: string, ks: string[], extra: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {}) => {
      const t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = { ...extra };
      for (const k of ks) {
        const kk = k === 'shared.weight' ? 'encoder.embed_tokens.weight' : k;
        t[kk] = { dtype: 'F32', shape: w[k]!.shape, data: w[k]!.data };
      }
      for (const k of Object.keys(t)) weightMap[k] = name;
      await saveSafetensors(path.join(dir, name), t);
    };
    await shard('model-00001-of-00002.safetensors', keys.slice(0, half));
    await shard('model-00002-of-00002.safetensors', keys.slice(half), {
      'decoder.block.0.layer.0.SelfAttention.q.weight': { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) },
    });
    writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const enc = await T5TextEncoder.fromPretrained(dir, { modelMaxLength: 8 });
    const out = enc.encode(['a red ball']);
    const ids = [3, 4, 5, 1];
    const ref = naiveT5(c, w, ids, [1, 1, 1, 1]).flat();
    expect(maxAbsDiff(out.embeddings.dataSync().subarray(0, 4 * 16), ref)).toBeLessThan(1e-5);
    out.embeddings.dispose();
    out.mask.dispose();
    enc.dispose();
  });

  it('rejects bad input with clear errors', async () => {
    const dir = path.join(tmp, 'bad');
    await writeTinyT5(dir, tinyT5Config(), 16);
    const enc = await T5TextEncoder.fromPretrained(dir, { modelMaxLength: 8 });
    expect(() => enc.encode([])).toThrow(/batch is empty/);
    expect(() => enc.encode(['ok', 3 as unknown as string])).toThrow(/texts\[1\] is a number/);
    expect(() => enc.encode([null as unknown as string])).toThrow(/texts\[0\] is null/);
    expect(() => enc.encode('a red ball' as unknown as string[])).toThrow(/must be an array of strings/);
    await expect(T5TextEncoder.fromPretrained(path.join(tmp, 'nope'))).rejects.toThrow(/no config.json/);
    await expect(createTextEncoder({ type: 't5', path: dir, modelMaxLength: 0 })).rejects.toThrow(/modelMaxLength must be a positive integer/);
    enc.dispose();
  });

  it('does not leak tensors across encodes', async () => {
    const dir = path.join(tmp, 'leak');
    await writeTinyT5(dir, tinyT5Config(), 17);
    const enc = await T5TextEncoder.fromPretrained(dir, { modelMaxLength: 10, maxBatchSize: 1 });
    const first = enc.encode(['a']);
    first.embeddings.dispose();
    first.mask.dispose();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const o = enc.encode(['a red ball', 'dog']);
      o.embeddings.dispose();
      o.mask.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    enc.dispose();
  });
});
