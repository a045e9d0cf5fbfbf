import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@opensora/core';
import { STDiT2, STDIT2_PRESETS, configFromOfficial, countParameters, parameterSpecs, resolveConfig } from '../src/index.js';
import { FIXTURES } from './helpers.js';

describe('config', () => {
  it('STDiT2-XL/2 has exactly the official parameter count (from shapes, nothing allocated)', () => {
    const n = STDiT2.countParameters('STDiT2-XL/2');
    expect(n.keys).toBe(707);
    expect(n.total).toBe(768_271_300);
    expect(n.trainable).toBe(767_452_064);
    expect(n.total - n.trainable).toBe(819_200 + 36);
    expect(n.bytesF32).toBe(3_073_085_200);
    const specs = parameterSpecs(STDIT2_PRESETS['STDiT2-XL/2']!);
    const block0 = specs.filter((s) => s.name.startsWith('blocks.0.'));
    expect(block0.length).toBe(24);
    expect(block0.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0)).toBe(26_572_320);
    // without qk_norm: 4 keys fewer per block; with model_max_length 120 y_embedding is (120, 4096)
    const noQk = countParameters({ ...STDIT2_PRESETS['STDiT2-XL/2']!, qkNorm: false, modelMaxLength: 120 });
    expect(noQk.keys).toBe(707 - 4 * 28);
    expect(noQk.total).toBe(768_271_300 - 4 * 72 * 28 - 80 * 4096);
  });

  it('the benchmark preset has the 20.3M parameters of facts.md', () => {
    const n = STDiT2.countParameters('STDiT2-bench');
    expect(n.trainable / 1e6).toBeCloseTo(20.3, 1);
  });

  it('the official XL/2 shapes of spec section 7', () => {
    const specs = new Map(parameterSpecs(STDIT2_PRESETS['STDiT2-XL/2']!).map((s) => [s.name, s.shape]));
    expect(specs.get('x_embedder.proj.weight')).toEqual([1152, 4, 1, 2, 2]);
    expect(specs.get('t_block.1.weight')).toEqual([6912, 1152]);
    expect(specs.get('y_embedder.y_embedding')).toEqual([200, 4096]);
    expect(specs.get('rope.freqs')).toEqual([36]);
    expect(specs.get('blocks.27.attn_temp.k_norm.weight')).toEqual([72]);
    expect(specs.get('blocks.3.cross_attn.kv_linear.weight')).toEqual([2304, 1152]);
    expect(specs.get('final_layer.linear.weight')).toEqual([32, 1152]);
    expect(specs.get('csize_embedder.mlp.0.weight')).toEqual([384, 256]);
    expect(specs.get('fps_embedder.mlp.2.weight')).toEqual([1152, 1152]);
  });

  it('state-dict order at depth 1 is the reference order (59 keys)', () => {
    const names = parameterSpecs({ ...STDIT2_PRESETS['STDiT2-XL/2']!, depth: 1 }).map((s) => s.name);
    expect(names.length).toBe(59);
    expect(names.slice(0, 17)).toEqual([
      'x_embedder.proj.weight', 'x_embedder.proj.bias',
      't_embedder.mlp.0.weight', 't_embedder.mlp.0.bias', 't_embedder.mlp.2.weight', 't_embedder.mlp.2.bias',
      't_block.1.weight', 't_block.1.bias', 't_block_temp.1.weight', 't_block_temp.1.bias',
      'y_embedder.y_embedding', 'y_embedder.y_proj.fc1.weight', 'y_embedder.y_proj.fc1.bias',
      'y_embedder.y_proj.fc2.weight', 'y_embedder.y_proj.fc2.bias', 'rope.freqs', 'blocks.0.scale_shift_table',
    ]);
    expect(names.slice(-20, -17)).toEqual(['blocks.0.attn_temp.proj.bias', 'final_layer.scale_shift_table', 'final_layer.linear.weight']);
    expect(names[names.length - 1]).toBe('fps_embedder.mlp.2.bias');
  });

  it('the fixture metadata config (snake_case) and the shared tiny preset agree', () => {
    const meta = JSON.parse(readFileSync(`${FIXTURES}/stdit2_tiny_cases_public.json`, 'utf8')).config;
    const c = configFromOfficial(meta);
    const p = STDIT2_PRESETS['STDiT2-tiny']!;
    for (const k of ['hiddenSize', 'depth', 'numHeads', 'captionChannels', 'modelMaxLength', 'inputSqSize', 'qkNorm', 'predSigma', 'inChannels'] as const) {
      expect(c[k]).toEqual(p[k]);
    }
    expect(c.patchSize).toEqual([1, 2, 2]);
    const m = STDiT2.fromOfficialConfig(JSON.stringify(meta));
    expect(m.outChannels).toBe(8);
    expect(m.countParameters().total).toBe(596_076); // n_state_dict_elements of the fixture
    m.dispose();
  });

  it('missing snake_case fields take the reference class defaults (input_sq_size 32, L 120, qk_norm off)', () => {
    const c = configFromOfficial({ hidden_size: 96, num_heads: 4, depth: 1, caption_channels: 8 });
    expect(c.inputSqSize).toBe(32);
    expect(c.modelMaxLength).toBe(120);
    expect(c.qkNorm).toBe(false);
    expect(configFromOfficial({ model_type: 'STDiT2', enable_flash_attn: true, hidden_size: 1152 }).hiddenSize).toBe(1152);
  });

  it('invalid configs fail with every problem named', () => {
    const bad = () => resolveConfig({ hiddenSize: 100, numHeads: 7, depth: 0, dropPath: 1.5 });
    expect(bad).toThrow(ConfigError);
    try {
      bad();
    } catch (e) {
      const msg = (e as Error).message;
      expect(msg).toContain('hiddenSize: must be divisible by 3');
      expect(msg).toContain('divisible by numHeads (7)');
      expect(msg).toContain('depth: expected a positive integer');
      expect(msg).toContain('dropPath');
    }
    expect(() => resolveConfig({ hidenSize: 96 } as never)).toThrow(/hidenSize: unknown field/);
    expect(() => configFromOfficial({ hiden_size: 96 }, { strict: true })).toThrow(/hiden_size/);
    expect(() => configFromOfficial('{not json')).toThrow(ConfigError);
    expect(() => STDiT2.preset('nope')).toThrow(/Unknown STDiT2 preset/);
  });
});
