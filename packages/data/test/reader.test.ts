import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@opensora/core';
import { BatchLoader, DatasetReader, synthesizeDataset, temporalCropIndices, type SynthResult } from '../src/index.js';
import { tempDir } from './helpers.js';

const tmp = tempDir('osdata-reader-');
let synth: SynthResult;
beforeAll(async () => {
  synth = await synthesizeDataset({ outDir: tmp.dir, seed: 6, numVideos: 3, numImages: 1, sizes: [[32, 48]], imageSizes: [[40, 30]], lengths: [30], fps: [10], cutFraction: 0 });
});
afterAll(() => tmp.cleanup());

describe('DatasetReader', () => {
  it('uses the reference temporal crop for a given draw, the bucket size, ar = W/H, raw fps', async () => {
    const reader = new DatasetReader(synth.csvPath, { workers: 0, frameInterval: 3 });
    const rng = new Rng(1);
    const u = rng.clone().random();
    const s = await reader.read(0, [8, 16, 24], rng);
    expect(s.frameIndices).toEqual(temporalCropIndices(30, 8, 3, { u }));
    expect(s.shape).toEqual([3, 8, 16, 24]);
    expect([s.numFrames, s.height, s.width, s.ar, s.fps]).toEqual([8, 16, 24, 24 / 16, 10]);
    expect(s.text).toBe(synth.items[0]!.caption);
    expect(s.path).toBe(path.join(tmp.dir, synth.rows[0]!.path));
    const img = await reader.read(3, [1, 20, 20]);
    expect([img.shape, img.fps, img.frameIndices]).toEqual([[3, 1, 20, 20], 120, [0]]);
    await reader.close();
  });

  it('conventions are configurable: ar = H/W, fps / frameInterval', async () => {
    const reader = new DatasetReader(synth.csvPath, { workers: 0, frameInterval: 2, arConvention: 'height/width', fpsMode: 'effective' });
    const s = await reader.read(1, [4, 16, 24]);
    expect([s.ar, s.fps]).toEqual([16 / 24, 5]);
    await reader.close();
  });

  it('recounts when the CSV overstates the frame count, instead of failing', async () => {
    const rows = synth.rows.map((r) => ({ ...r, num_frames: r.num_frames === 1 ? 1 : 60 }));
    const reader = new DatasetReader(rows, { root: tmp.dir, workers: 0, frameInterval: 3 });
    // with 60 frames claimed, u close to 1 puts the window past the real end (30 frames)
    const s = await reader.read(0, [8, 16, 16], { random: () => 0.99 } as unknown as Rng);
    expect(s.recounted).toBe(true);
    expect(s.frameIndices).toEqual(temporalCropIndices(30, 8, 3, { u: 0.99 }));
    // fewer real frames than T: a MediaError (the loader replaces such a sample)
    await expect(reader.read(0, [32, 16, 16])).rejects.toThrow(/30 frames, fewer than the 32/);
    await reader.close();
  });

  it('the batch loader is deterministic per (seed, epoch, step), different across epochs, same with workers', async () => {
    const specs = [{ indices: [0, 1, 2], thw: [4, 16, 16] as [number, number, number], step: 0 }];
    const run = async (workers: number, epoch: number) => {
      const reader = new DatasetReader(synth.csvPath, { workers, frameInterval: 2 });
      const loader = new BatchLoader(reader, specs, { seed: 9, epoch });
      const out = [];
      for await (const b of loader) out.push(Array.from(b.video));
      await reader.close();
      return out[0]!;
    };
    const a = await run(0, 0);
    expect(await run(0, 0)).toEqual(a);
    expect(await run(2, 0)).toEqual(a);
    expect(await run(0, 1)).not.toEqual(a);
  });
});
