/** Writes a tiny random T5, a batch and the tfjs output for bench/torch_t5.py check. Usage: tsx bench/write-check.ts OUT.safetensors */
import { initBackend, saveSafetensors, tf } from '@opensora/core';
import { T5EncoderModel, randomT5Weights, t5ConfigToJson, weightsFromRecord } from '../src/index.js';
import { tinyT5Config } from '../test/helpers.js';

await initBackend();
const c = tinyT5Config({ dModel: 32, dKv: 8, numHeads: 4, dFf: 48, numLayers: 3, vocabSize: 64 });
const w = randomT5Weights(c, 5);
const m = T5EncoderModel.fromWeights(c, weightsFromRecord(w));
const B = 3;
const L = 120;
const ids = new Int32Array(B * L).map((_, i) => (i * 13 + 7) % 64);
const lens = [120, 57, 1];
const mask = new Int32Array(B * L).map((_, i) => (i % L < lens[Math.floor(i / L)]! ? 1 : 0));
const out = m.forward(tf.tensor2d(ids, [B, L], 'int32'), tf.tensor2d(mask, [B, L], 'int32'));
const t: Record<string, { dtype: 'F32' | 'I32'; shape: number[]; data: Float32Array | Int32Array }> = {};
for (const [k, v] of Object.entries(w)) t[k] = { dtype: 'F32', shape: v.shape, data: v.data };
t.__ids = { dtype: 'I32', shape: [B, L], data: ids };
t.__mask = { dtype: 'I32', shape: [B, L], data: mask };
t.__out = { dtype: 'F32', shape: [B, L, c.dModel], data: out.dataSync() as Float32Array };
await saveSafetensors(process.argv[2]!, t, { metadata: { config: JSON.stringify(t5ConfigToJson(c)) } });
console.log(`wrote ${process.argv[2]}`);
