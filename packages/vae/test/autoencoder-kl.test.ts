/**
 * AutoencoderKL against the independent float64 loop reference (test/reference.ts), loading a state
 * dict with diffusers names that the test writes itself; parameter counts from shapes; strict keys.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tf, initBackend, Rng, saveSafetensors, OpenSoraError } from '@opensora/core';
import { AutoencoderKL, SD_VAE_CONFIG, TINY_VAE_CONFIG, type AutoencoderKLConfig } from '../src/index.js';
import { refDecode, refEncode, type Img, type RefConfig, type SD } from './reference.js';
import { diffusersShapes, maxAbsDiff, randomStateDict } from './helpers.js';

const CFG: AutoencoderKLConfig = {
  ...TINY_VAE_CONFIG,
  block_out_channels: [8, 16, 16],
  down_block_types: Array(3).fill('DownEncoderBlock2D'),
  up_block_types: Array(3).fill('UpDecoderBlock2D'),
  layers_per_block: 1,
  norm_num_groups: 4,
  latent_channels: 4,
};
const REF: RefConfig = CFG;

let tmp: string;
beforeAll(async () => {
  await initBackend();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vae-kl-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function randomImg(c: number, h: number, w: number, seed: number, lo = -1, hi = 1): Img {
  const rng = new Rng(seed);
  return { c, h, w, d: Float64Array.from({ length: c * h * w }, () => rng.uniform(lo, hi)) };
}
function imgTensor(img: Img): tf.Tensor4D {
  return tf.tensor4d(Float32Array.from(img.d), [1, img.c, img.h, img.w]);
}
function rel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(b[i]!));
  return maxAbsDiff(a, b) / Math.max(1, m);
}

describe('AutoencoderKL vs the loop reference', () => {
  const sd = randomStateDict(REF, 7);
  const vae = new AutoencoderKL(CFG, { init: 'none' });
  beforeAll(() => {
    vae.loadStateDict(sd);
  });
  afterAll(() => vae.dispose());

  it.each([
    [12, 12],
    [9, 13],
    [5, 8],
  ])('encode %ix%i: posterior mean and logvar match within 1e-5 (relative)', (h, w) => {
    const img = randomImg(3, h, w, h * 100 + w);
    const ref = refEncode(sd, REF, img);
    const x = imgTensor(img);
    const { mean, logvar } = vae.encode(x);
    // Latent size: floor(n/2) per downsampler (two here).
    expect(mean.shape).toEqual([1, 4, Math.floor(Math.floor(h / 2) / 2), Math.floor(Math.floor(w / 2) / 2)]);
    expect([mean.shape[2], mean.shape[3]]).toEqual([ref.mean.h, ref.mean.w]);
    expect(rel(mean.dataSync(), ref.mean.d)).toBeLessThan(1e-5);
    expect(rel(logvar.dataSync(), ref.logvar.d)).toBeLessThan(1e-5);
    tf.dispose([x, mean, logvar]);
  });

  it.each([
    [3, 3],
    [2, 5],
  ])('decode %ix%i latent: matches within 1e-5 (relative)', (h, w) => {
    const z = randomImg(4, h, w, 5 + h + w, -2, 2);
    const ref = refDecode(sd, REF, z);
    const zt = imgTensor(z);
    const y = vae.decode(zt);
    expect(y.shape).toEqual([1, 3, 4 * h, 4 * w]);
    expect(rel(y.dataSync(), ref.d)).toBeLessThan(1e-5);
    tf.dispose([zt, y]);
  });

  it('stateDict() gives back the loaded PyTorch-layout weights under the diffusers names', () => {
    const out = vae.stateDict();
    expect(Object.keys(out).sort()).toEqual(Object.keys(sd).sort());
    for (const k of ['encoder.conv_in.weight', 'encoder.mid_block.attentions.0.to_q.weight', 'decoder.up_blocks.0.resnets.0.conv_shortcut.weight']) {
      if (!sd[k]) continue;
      expect(out[k]!.shape).toEqual(sd[k]!.shape);
      expect(maxAbsDiff(out[k]!.dataSync(), sd[k]!.data)).toBe(0);
    }
    tf.dispose(Object.values(out));
  });

  it('does not leak tensors', () => {
    const x = tf.randomUniform([2, 3, 8, 8], -1, 1) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const p = vae.encode(x);
    const y = vae.decode(p.mean);
    expect(tf.memory().numTensors).toBe(before + 3);
    tf.dispose([x, p.mean, p.logvar, y]);
  });
});

describe('parameter count from shapes alone', () => {
  it('the official sd-vae-ft-ema config has 83.65M parameters', () => {
    const n = AutoencoderKL.countParameters(SD_VAE_CONFIG);
    expect(n).toBe(83_653_863);
    expect((n / 1e6).toFixed(2)).toBe('83.65');
    // Building it without init allocates nothing and reports the same count.
    const before = tf.memory().numTensors;
    const m = new AutoencoderKL(SD_VAE_CONFIG, { init: 'none' });
    expect(m.numParameters()).toBe(n);
    expect(m.spatialCompression).toBe(8);
    expect(tf.memory().numTensors).toBe(before);
    // Keys and shapes agree with the independent diffusers key list.
    const shapes = diffusersShapes(SD_VAE_CONFIG);
    const specs = m.parameterSpecs();
    expect(specs.length).toBe(Object.keys(shapes).length);
    for (const s of specs) expect(shapes[s.name], s.name).toEqual(s.shape);
    expect(shapes['encoder.down_blocks.1.resnets.0.conv_shortcut.weight']).toEqual([256, 128, 1, 1]);
    expect(shapes['decoder.up_blocks.3.resnets.0.conv_shortcut.weight']).toEqual([128, 256, 1, 1]);
    m.dispose();
  });

  it('counts any config, e.g. the tiny one', () => {
    const shapes = diffusersShapes(TINY_VAE_CONFIG);
    const expected = Object.values(shapes).reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
    expect(AutoencoderKL.countParameters(TINY_VAE_CONFIG)).toBe(expected);
  });
});

describe('loading diffusers folders', () => {
  const sd: SD = randomStateDict(REF, 11);
  const raw = (s: SD) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }]));
  async function writeFolder(dir: string, s: SD, config: object = { _class_name: 'AutoencoderKL', _diffusers_version: '0.4.2', ...CFG }): Promise<string> {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    await saveSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'), raw(s));
    return dir;
  }
  function probe(vae: AutoencoderKL): Float32Array {
    return tf.tidy(() => vae.encode(tf.tensor4d(Float32Array.from({ length: 3 * 8 * 8 }, (_, i) => Math.sin(i)), [1, 3, 8, 8])).mean.dataSync() as Float32Array);
  }
  let expected: Float32Array;
  beforeAll(() => {
    const m = new AutoencoderKL(CFG, { init: 'none' });
    m.loadStateDict(sd);
    expected = probe(m);
    m.dispose();
  });

  it('fromPretrained(dir) reads config.json + diffusion_pytorch_model.safetensors written with diffusers names', async () => {
    const dir = await writeFolder(path.join(tmp, 'plain'), sd);
    const vae = await AutoencoderKL.fromPretrained(dir);
    expect(vae.config.block_out_channels).toEqual([8, 16, 16]);
    expect(maxAbsDiff(probe(vae), expected)).toBe(0);
    vae.dispose();
    // A pipeline folder with a vae/ subfolder works too.
    const pipe = path.join(tmp, 'pipe');
    await writeFolder(path.join(pipe, 'vae'), sd);
    const v2 = await AutoencoderKL.fromPretrained(pipe);
    expect(maxAbsDiff(probe(v2), expected)).toBe(0);
    v2.dispose();
  });

  it('reads a sharded checkpoint through its index', async () => {
    const dir = path.join(tmp, 'sharded');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(CFG));
    const keys = Object.keys(sd);
    const half = Math.floor(keys.length / 2);
    const shards = [keys.slice(0, half), keys.slice(half)];
    const weightMap: Record<string, string> = {};
    for (let i = 0; i < 2; i++) {
      const file = `diffusion_pytorch_model-0000${i + 1}-of-00002.safetensors`;
      const part: SD = {};
      for (const k of shards[i]!) {
        part[k] = sd[k]!;
        weightMap[k] = file;
      }
      await saveSafetensors(path.join(dir, file), raw(part));
    }
    fs.writeFileSync(path.join(dir, 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
    const vae = await AutoencoderKL.fromPretrained(dir);
    expect(maxAbsDiff(probe(vae), expected)).toBe(0);
    vae.dispose();
  });

  it('accepts the old attention names (query/key/value/proj_attn) and 1x1-conv attention weights', async () => {
    const old: SD = {};
    for (const [k, v] of Object.entries(sd)) {
      const nk = k.replace('.to_q.', '.query.').replace('.to_k.', '.key.').replace('.to_v.', '.value.').replace('.to_out.0.', '.proj_attn.');
      old[nk] = nk !== k && k.endsWith('weight') ? { shape: [...v.shape, 1, 1], data: v.data } : v;
    }
    const dir = await writeFolder(path.join(tmp, 'old'), old);
    const vae = await AutoencoderKL.fromPretrained(dir);
    expect(maxAbsDiff(probe(vae), expected)).toBe(0);
    vae.dispose();
  });

  it('a missing key is reported by name', async () => {
    const cut = { ...sd };
    expect(cut['decoder.up_blocks.1.resnets.1.norm2.weight']).toBeDefined();
    delete cut['decoder.up_blocks.1.resnets.1.norm2.weight'];
    const dir = await writeFolder(path.join(tmp, 'missing'), cut);
    const err = await AutoencoderKL.fromPretrained(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenSoraError);
    expect((err as OpenSoraError).code).toBe('E_STATE_DICT');
    expect((err as Error).message).toContain('missing 1 of');
    expect((err as Error).message).toContain('decoder.up_blocks.1.resnets.1.norm2.weight');
    // The same through loadStateDict on a record.
    const m = new AutoencoderKL(CFG, { init: 'none' });
    expect(() => m.loadStateDict(cut)).toThrow(/decoder\.up_blocks\.1\.resnets\.1\.norm2\.weight/);
    m.dispose();
  });

  it('unexpected and mis-shaped keys are errors that name them; strict: false ignores extras', async () => {
    const m = new AutoencoderKL(CFG, { init: 'none' });
    const extra = { ...sd, 'encoder.bogus.weight': { shape: [2], data: new Float32Array(2) } };
    expect(() => m.loadStateDict(extra)).toThrow(/unexpected keys: encoder\.bogus\.weight/);
    const bad = { ...sd, 'encoder.conv_in.weight': { shape: [8, 3, 1, 1], data: new Float32Array(24) } };
    expect(() => m.loadStateDict(bad)).toThrow(/encoder\.conv_in\.weight: expected \[8, 3, 3, 3\], got \[8, 3, 1, 1\]/);
    const rep = m.loadStateDict(extra, { strict: false });
    expect(rep.unexpected).toEqual(['encoder.bogus.weight']);
    expect(m.initialized).toBe(true);
    m.dispose();
  });

  it('a config that does not match the checkpoint names what is missing', async () => {
    const dir = await writeFolder(path.join(tmp, 'mismatch'), sd, { ...CFG, layers_per_block: 2 });
    await expect(AutoencoderKL.fromPretrained(dir)).rejects.toThrow(/encoder\.down_blocks\.0\.resnets\.1\./);
  });

  it('clear errors for a folder without weights, with only a .bin, or without config.json', async () => {
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty, { recursive: true });
    await expect(AutoencoderKL.fromPretrained(empty)).rejects.toThrow(/No config\.json/);
    fs.writeFileSync(path.join(empty, 'config.json'), JSON.stringify(CFG));
    fs.writeFileSync(path.join(empty, 'diffusion_pytorch_model.bin'), 'x');
    await expect(AutoencoderKL.fromPretrained(empty)).rejects.toThrow(/diffusion_pytorch_model\.bin.*convert them to safetensors/);
    await expect(AutoencoderKL.fromPretrained(path.join(tmp, 'nope'))).rejects.toThrow(/does not exist/);
  });

  it('an unloaded model refuses to run and says why', () => {
    const m = new AutoencoderKL(CFG, { init: 'none' });
    expect(() => m.encode(tf.zeros([1, 3, 8, 8]) as tf.Tensor4D)).toThrow(/never loaded/);
    m.dispose();
  });
});

describe('config validation', () => {
  it('lists each bad field', () => {
    expect(() => new AutoencoderKL({ block_out_channels: [12, 24], norm_num_groups: 8, act_fn: 'gelu' }, { init: 'none' })).toThrow(
      /12 is not divisible by norm_num_groups 8[\s\S]*act_fn: only silu\/swish/,
    );
    expect(() => new AutoencoderKL({ block_out_channels: [8, 8], down_block_types: ['DownEncoderBlock2D'] }, { init: 'none' })).toThrow(/down_block_types: has 1 entries/);
    expect(() => new AutoencoderKL({ block_out_channels: [8], down_block_types: ['AttnDownEncoderBlock2D'], norm_num_groups: 4 }, { init: 'none' })).toThrow(/only 'DownEncoderBlock2D'/);
  });
  it("fills missing fields with diffusers' defaults", () => {
    const m = new AutoencoderKL({}, { init: 'none' });
    expect(m.config.block_out_channels).toEqual([64]);
    expect(m.config.layers_per_block).toBe(1);
    expect(m.spatialCompression).toBe(1);
  });
});
