import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, openSafetensors, OpenSoraError, saveSafetensors, tf } from '@opensora/core';
import { STDiT2, adaptCaptionEmbedding } from '../src/index.js';
import { TINY_WEIGHTS, maxAbsDiff } from './helpers.js';

let dir: string;
beforeAll(async () => {
  await initBackend('wasm');
  dir = mkdtempSync(path.join(os.tmpdir(), 'stdit-w-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('weights', () => {
  it('fromPretrained reads the fixture with official names/shapes and holds one copy only', () => {
    const before = tf.memory().numBytes;
    const m = STDiT2.fromPretrained(TINY_WEIGHTS);
    const r = openSafetensors(TINY_WEIGHTS);
    const sd = m.stateDict();
    expect([...sd.keys()].sort()).toEqual(r.keys().sort());
    for (const k of r.keys()) {
      expect(sd.get(k)!.shape, k).toEqual(r.info(k).shape);
    }
    const ref = r.tensor('blocks.1.mlp.fc2.weight');
    expect(maxAbsDiff(sd.get('blocks.1.mlp.fc2.weight')!, ref)).toBe(0);
    ref.dispose();
    r.close();
    // exactly the state dict is resident: no second copy, no leftovers
    expect(tf.memory().numBytes - before).toBe(m.countParameters().bytesF32);
    m.dispose();
    expect(tf.memory().numBytes).toBe(before);
  });

  it('save -> fromPretrained round trip is bit exact (file with metadata config, and a dir with config.json)', async () => {
    const m = STDiT2.preset('STDiT2-micro', {}, { seed: 3 });
    const file = path.join(dir, 'micro.safetensors');
    await m.saveSafetensors(file);
    const back = STDiT2.fromPretrained(file);
    expect(back.config).toEqual(m.config);
    for (const [k, t] of m.stateDict()) expect(maxAbsDiff(t, back.stateDict().get(k)!), k).toBe(0);
    await m.savePretrained(path.join(dir, 'pre'));
    const cfg = JSON.parse(readFileSync(path.join(dir, 'pre', 'config.json'), 'utf8'));
    expect(cfg.hidden_size).toBe(24);
    expect(cfg.input_sq_size).toBe(16);
    const back2 = STDiT2.fromPretrained(path.join(dir, 'pre'));
    expect(back2.countParameters()).toEqual(m.countParameters());
    expect(maxAbsDiff(back2.nullCaption, m.nullCaption)).toBe(0);
    [m, back, back2].forEach((x) => x.dispose());
  });

  it('strict loadStateDict names every missing, unexpected and mis-shaped key', () => {
    const m = STDiT2.preset('STDiT2-micro');
    const sd: Record<string, tf.Tensor> = Object.fromEntries(m.stateDict());
    const rec = { ...sd };
    delete rec['blocks.0.mlp.fc1.bias'];
    delete rec['rope.freqs'];
    rec['blocks.0.bogus'] = tf.zeros([1]);
    rec['pos_embed'] = tf.zeros([1]);
    rec['final_layer.linear.weight'] = tf.zeros([3, 24]);
    let err: unknown;
    try {
      m.loadStateDict(rec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OpenSoraError);
    const e = err as OpenSoraError;
    expect(e.code).toBe('E_STATE_DICT');
    for (const k of ['blocks.0.mlp.fc1.bias', 'rope.freqs', 'blocks.0.bogus', 'pos_embed', 'final_layer.linear.weight: expected shape [32, 24], got [3, 24]']) {
      expect(e.message).toContain(k);
    }
    expect(e.details.missing).toEqual(['rope.freqs', 'blocks.0.mlp.fc1.bias']);
    // non-strict: missing/unexpected are reported, shapes are still checked
    rec['final_layer.linear.weight'] = sd['final_layer.linear.weight']!;
    const rep = m.loadStateDict(rec, { strict: false });
    expect(rep.missing).toEqual(['rope.freqs', 'blocks.0.mlp.fc1.bias']);
    expect(rep.unexpected).toEqual(['blocks.0.bogus', 'pos_embed']);
    m.dispose();
  });

  it('y_embedding 120 -> 200: rows extended with the last row (and truncated when longer)', () => {
    const data = Float32Array.from([1, 2, 3, 4, 5, 6]); // 3 rows x 2
    const ext = adaptCaptionEmbedding(data, [3, 2], 5);
    expect(ext.shape).toEqual([5, 2]);
    expect(Array.from(ext.data)).toEqual([1, 2, 3, 4, 5, 6, 5, 6, 5, 6]);
    const cut = adaptCaptionEmbedding(data, [3, 2], 2);
    expect(Array.from(cut.data)).toEqual([1, 2, 3, 4]);
  });

  it('fromPretrained applies the reference loader: pos_embed dropped, 4-D patch weight, caption rows extended', async () => {
    const src = STDiT2.preset('STDiT2-micro', { modelMaxLength: 4 }, { seed: 5 });
    const rec: Record<string, tf.Tensor> = Object.fromEntries(src.stateDict());
    const w = rec['x_embedder.proj.weight']!;
    rec['x_embedder.proj.weight'] = tf.reshape(w, [24, 4, 2, 2]); // an old 2-D-conv checkpoint
    rec['pos_embed'] = tf.zeros([1, 4, 24]);
    rec['pos_embed_temporal'] = tf.zeros([1, 2, 24]);
    const file = path.join(dir, 'old.safetensors');
    await saveSafetensors(file, rec);
    const m = STDiT2.fromPretrained(file, { config: { ...src.config, modelMaxLength: 6 } });
    expect(m.nullCaption.shape).toEqual([6, 8]);
    const y = m.nullCaption.arraySync() as number[][];
    const y0 = src.nullCaption.arraySync() as number[][];
    expect(y.slice(0, 4)).toEqual(y0);
    expect(y[4]).toEqual(y0[3]);
    expect(y[5]).toEqual(y0[3]);
    expect(maxAbsDiff(m.stateDict().get('x_embedder.proj.weight')!, w)).toBe(0);
    // strict: a key neither expected nor dropped by the reference is an error naming it
    rec['extra.key'] = tf.zeros([2]);
    await saveSafetensors(file, rec);
    expect(() => STDiT2.fromPretrained(file, { config: src.config })).toThrow(/1 unexpected: extra\.key/);
    m.dispose();
    src.dispose();
  });

  it('freezing by name pattern and the official freeze options', () => {
    const m = STDiT2.preset('STDiT2-micro');
    const all = m.parameters().size;
    const frozen = m.freeze('cross_attn');
    expect(frozen.length).toBe(6);
    expect(m.parameters().size).toBe(all - 6);
    expect([...m.parameters().keys()].some((k) => k.includes('cross_attn'))).toBe(false);
    expect(m.namedParameters().get('blocks.0.cross_attn.proj.weight')!.trainable).toBe(false);
    m.unfreeze(/cross_attn\.proj/);
    expect(m.parameters().size).toBe(all - 4);
    m.dispose();
    const t = STDiT2.preset('STDiT2-micro', { freeze: 'not_temporal' });
    expect([...t.parameters().keys()].every((k) => k.includes('attn_temp'))).toBe(true);
    expect(t.parameters().size).toBe(6);
    t.dispose();
    // buffers are never trainable
    const b = STDiT2.preset('STDiT2-micro');
    expect(b.parameters().has('y_embedder.y_embedding')).toBe(false);
    expect(b.parameters().has('rope.freqs')).toBe(false);
    expect(b.nullCaption.trainable).toBe(false);
    b.dispose();
  });

  it('the reference initialisation: zeroed projections, ones for the q/k norms, rope.freqs fixed', () => {
    const m = STDiT2.preset('STDiT2-micro', {}, { seed: 1 });
    const sd = m.stateDict();
    const abs = (k: string) => tf.tidy(() => tf.max(tf.abs(sd.get(k)!)).dataSync()[0]!);
    expect(abs('blocks.0.cross_attn.proj.weight')).toBe(0);
    expect(abs('blocks.0.attn_temp.proj.weight')).toBe(0);
    expect(abs('final_layer.linear.weight')).toBe(0);
    expect(abs('blocks.0.mlp.fc1.bias')).toBe(0);
    expect(abs('x_embedder.proj.bias')).toBeGreaterThan(0);
    expect(abs('x_embedder.proj.bias')).toBeLessThanOrEqual(0.25);
    expect(Array.from(sd.get('blocks.0.attn.q_norm.weight')!.dataSync())).toEqual(new Array(12).fill(1));
    const r = openSafetensors(TINY_WEIGHTS);
    // rope.freqs equals the reference's (dim 24 in the fixture)
    const tiny = STDiT2.preset('STDiT2-tiny');
    expect(Array.from(tiny.stateDict().get('rope.freqs')!.dataSync())).toEqual(Array.from(r.readFloat32('rope.freqs')));
    r.close();
    // same seed, same weights
    const m2 = STDiT2.preset('STDiT2-micro', {}, { seed: 1 });
    expect(maxAbsDiff(m2.stateDict().get('t_block.1.weight')!, sd.get('t_block.1.weight')!)).toBe(0);
    [m, m2, tiny].forEach((x) => x.dispose());
  });
});
