import { describe, expect, it } from 'vitest';
import { ConfigError } from '@opensora/core';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OFFICIAL_BUCKETS, STAGE_MASK_RATIOS, TRAIN_PRESETS, TRAIN_PRESET_NAMES, resolveTrainConfig, loadTrainConfig } from '../src/index.js';

describe('official presets mirror configs/opensora-v1-1/train/*.py (data.md section 5)', () => {
  it('has every official file and the tiny CPU presets', () => {
    for (const n of ['image', 'stage1', 'stage2', 'stage3', 'video', 'benchmark', 'tiny', 'tiny-image', 'tiny-stage1', 'tiny-stage2', 'tiny-stage3']) {
      expect(TRAIN_PRESET_NAMES).toContain(n);
      expect(TRAIN_PRESETS[n]!.name).toBe(n);
    }
  });

  it('shared fields: lr 2e-5, grad_clip 1.0, frame_interval 3, resize_crop, seed 42, iddpm with no respacing, XL/2 with qk_norm and input_sq_size 512', () => {
    for (const n of ['image', 'stage1', 'stage2', 'stage3', 'video', 'benchmark']) {
      const c = TRAIN_PRESETS[n]!;
      expect(c.lr).toBe(2e-5);
      expect(c.gradClip).toBe(1.0);
      expect(c.dataset.frameInterval).toBe(3);
      expect(c.dataset.transformName).toBe('resize_crop');
      expect(c.seed).toBe(42);
      expect(c.epochs).toBe(1000);
      expect(c.logEvery).toBe(10);
      expect(c.scheduler).toMatchObject({ type: 'iddpm', timestepRespacing: '' });
      expect(c.model).toMatchObject({ type: 'STDiT2', preset: 'STDiT2-XL/2', config: { inputSqSize: 512, qkNorm: true } });
      expect(c.vae).toMatchObject({ type: 'sd-vae', fromPretrained: 'stabilityai/sd-vae-ft-ema', microBatchSize: 4 });
      expect(c.textEncoder).toMatchObject({ type: 't5', fromPretrained: 'DeepFloyd/t5-v1_1-xxl', modelMaxLength: 200 });
      expect(c.emaDecay).toBe(0.9999);
      expect(c.optimizer).toEqual({ type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
      expect(c.dtype).toBe('bf16');
      expect(c.ckptEvery).toBe(n === 'benchmark' ? 1000 : 500);
    }
  });

  it('per-file differences (data.md 5.2): grad checkpointing, mask ratios, workers, batch size', () => {
    const t = TRAIN_PRESETS;
    expect([t.stage1!.gradCheckpoint, t.stage2!.gradCheckpoint, t.stage3!.gradCheckpoint, t.image!.gradCheckpoint, t.video!.gradCheckpoint, t.benchmark!.gradCheckpoint]).toEqual([false, true, true, true, true, true]);
    expect([t.stage1!.numWorkers, t.stage2!.numWorkers, t.stage3!.numWorkers, t.image!.numWorkers, t.video!.numWorkers, t.benchmark!.numWorkers]).toEqual([8, 8, 8, 4, 4, 4]);
    for (const n of ['stage1', 'stage2', 'stage3']) {
      expect(t[n]!.maskRatios).toEqual(STAGE_MASK_RATIOS);
      expect(Object.keys(t[n]!.maskRatios!)).toEqual(['mask_no', 'mask_quarter_random', 'mask_quarter_head', 'mask_quarter_tail', 'mask_quarter_head_tail', 'mask_image_random', 'mask_image_head', 'mask_image_tail', 'mask_image_head_tail']);
    }
    for (const n of ['image', 'video', 'benchmark']) expect(t[n]!.maskRatios).toBeNull();
    expect([t.image!.batchSize, t.video!.batchSize, t.stage1!.batchSize, t.benchmark!.batchSize]).toEqual([10, 10, null, null]);
  });

  it('bucket tables (data.md 5.3; the Bucket sorts rows by pixel count itself)', () => {
    const s1 = TRAIN_PRESETS.stage1!.bucketConfig;
    expect(Object.keys(s1).sort()).toEqual(['1024', '512', '240p', '256', '144p'].sort());
    expect(s1['240p']).toEqual({ '16': [0.3, 2], '32': [0.3, 1], '64': [0.0, null] });
    expect(s1['144p']).toEqual({ '1': [0.5, 48], '16': [1.0, 6], '32': [1.0, 3], '96': [1.0, 1] });
    const s2 = TRAIN_PRESETS.stage2!.bucketConfig;
    expect(Object.keys(s2).sort()).toEqual(['1080p', '1024', '720p', '480p', '512', '240p', '256', '144p'].sort());
    expect(s2['256']!['1']).toEqual([0.8, 254]);
    expect(s2['240p']).toEqual({ '1': [0.1, 20], '16': [0.9, 17], '32': [0.8, 9], '64': [0.8, 4], '128': [0.8, 2] });
    const s3 = TRAIN_PRESETS.stage3!.bucketConfig;
    expect(Object.keys(s3).sort()).toEqual(['1024', '720p', '480p', '512', '360p', '240p', '256', '144p'].sort());
    expect(s3['512']!['128']).toEqual([0.8, 1]);
    expect(s3['144p']!['1']).toEqual([1.0, 200]);
    expect(TRAIN_PRESETS.image!.bucketConfig).toEqual({ '1080p': { '1': [1.0, 8] }, '1024': { '1': [1.0, 20] }, '480p': { '1': [1.0, 52] }, '512': { '1': [1.0, 80] }, '256': { '1': [1.0, 256] } });
    expect(TRAIN_PRESETS.video!.bucketConfig['240p']).toEqual({ '16': [1.0, 16], '32': [1.0, 8], '64': [1.0, 4], '128': [1.0, 2] });
    expect(TRAIN_PRESETS.benchmark!.batchSizeSearch).toEqual({ '720p': { '1': [20, 40], '32': [0.5, [2, 4]], '64': [0.5, [1, 1]] } });
    expect(TRAIN_PRESETS.benchmark!.bucketConfig).toEqual({ '720p': { '1': [1.0, 40], '32': [0.5, 4], '64': [0.5, 1] } });
    expect(OFFICIAL_BUCKETS.stage2).toEqual(s2);
  });

  it('presets are fresh objects (mutating one does not leak)', () => {
    const a = TRAIN_PRESETS.stage1!;
    a.bucketConfig['144p']!['1'] = [0, null];
    expect(TRAIN_PRESETS.stage1!.bucketConfig['144p']!['1']).toEqual([0.5, 48]);
  });
});

describe('resolveTrainConfig', () => {
  it('applies CLI-style overrides with coercion', () => {
    const c = resolveTrainConfig('tiny', ['lr=1e-4', 'seed=7', 'model.config.depth=1', 'gradCheckpoint=true', 'dataset.dataPath=/tmp/x.csv', 'maskRatios=null']);
    expect(c.lr).toBe(1e-4);
    expect(c.seed).toBe(7);
    expect(c.model.config.depth).toBe(1);
    expect(c.gradCheckpoint).toBe(true);
    expect(c.dataset.dataPath).toBe('/tmp/x.csv');
    expect(c.maskRatios).toBeNull();
    const r = resolveTrainConfig('tiny', { 'optimizer.weightDecay': 0.01 });
    expect(r.optimizer.weightDecay).toBe(0.01);
  });

  it('fills defaults for a minimal custom config', () => {
    const c = resolveTrainConfig({ bucketConfig: { '144p': { '1': [1, 4] } } });
    expect(c.lr).toBe(2e-5);
    expect(c.emaDecay).toBe(0.9999);
    expect(c.scheduler.type).toBe('iddpm');
    expect(c.dataset.frameInterval).toBe(3);
    expect(c.load).toBeNull();
    expect(c.startFromScratch).toBe(false);
  });

  it('names every bad field', () => {
    let err: unknown;
    try {
      resolveTrainConfig('tiny', ['lr=-1', 'bucketConfig.tiny-32.4=[2,1]', 'enable_flashattn=true', 'scheduler.type=ddim']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/lr/);
    expect(msg).toMatch(/bucketConfig\.tiny-32\.4/);
    expect(msg).toMatch(/enable_flashattn/);
    expect(msg).toMatch(/scheduler\.type/);
    expect(() => resolveTrainConfig('stage9')).toThrow(/Unknown train preset 'stage9'.*tiny/);
    expect(() => resolveTrainConfig('tiny', ['maskRatios.mask_no=0.5'])).toThrow(/sum to 1/);
    expect(() => resolveTrainConfig('tiny', ['maskRatios.mask_random=0.1'])).toThrow(/maskRatios/);
  });
});

describe('loadTrainConfig', () => {
  it('reads a preset name or a file that starts from a preset', async () => {
    expect((await loadTrainConfig('stage3', ['lr=3e-5'])).lr).toBe(3e-5);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'trainer-cfg-'));
    try {
      const yaml = path.join(dir, 'my.yaml');
      writeFileSync(yaml, 'preset: stage2\nlr: 1.0e-4\ndataset:\n  frameInterval: 1\nbucketConfig:\n  "144p": { "16": [1.0, 4] }\n');
      const c = await loadTrainConfig(yaml, ['seed=3']);
      expect([c.name, c.lr, c.dataset.frameInterval, c.dataset.transformName, c.seed, c.gradCheckpoint]).toEqual(['stage2', 1e-4, 1, 'resize_crop', 3, true]);
      expect(c.bucketConfig).toEqual({ '144p': { '16': [1.0, 4] } });
      const json = path.join(dir, 'full.json');
      writeFileSync(json, JSON.stringify({ bucketConfig: { '256': { '1': [1, 8] } }, lr: 0.1 }));
      expect((await loadTrainConfig(json)).lr).toBe(0.1);
      await expect(loadTrainConfig(path.join(dir, 'nope.yaml'))).rejects.toThrow(/neither a train preset nor a config file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
