/**
 * The full chain on generated media: synthesise -> info -> scene detection + cutting -> scoring ->
 * filtering -> stats -> reading bucketed samples through the batch loader.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VariableVideoBatchSampler, registerResolution, unregisterResolution } from '@opensora/bucket';
import { createLogger } from '@opensora/core';
import {
  BatchLoader,
  DatasetReader,
  SYNTH_COLORS,
  computeStats,
  cutScenes,
  detectScenesInRows,
  flowScorer,
  formatStatsTable,
  parseSynthCaption,
  parseTimecode,
  parseTimestampColumn,
  readDatasetCsv,
  readVideoFrames,
  runDatautil,
  runScorer,
  sharpnessScorer,
  synthesizeDataset,
  writeDatasetCsv,
  writeStatsPng,
  type DatasetRow,
  type Frame,
  type SynthResult,
} from '../src/index.js';
import { tempDir } from './helpers.js';

const tmp = tempDir('osdata-chain-');
let synth: SynthResult;
let infoCsv: string;
let infoRows: DatasetRow[];

/** Most frequent colour of a frame (quantised to 16 levels), as RGB. */
function dominant(f: Frame): [number, number, number] {
  const counts = new Map<number, { n: number; r: number; g: number; b: number }>();
  for (let i = 0; i < f.data.length; i += 3) {
    const key = ((f.data[i]! >> 4) << 8) | ((f.data[i + 1]! >> 4) << 4) | (f.data[i + 2]! >> 4);
    const c = counts.get(key) ?? { n: 0, r: 0, g: 0, b: 0 };
    c.n++;
    c.r += f.data[i]!;
    c.g += f.data[i + 1]!;
    c.b += f.data[i + 2]!;
    counts.set(key, c);
  }
  const best = [...counts.values()].sort((a, b) => b.n - a.n)[0]!;
  return [best.r / best.n, best.g / best.n, best.b / best.n];
}
const near = (a: readonly number[], b: readonly number[], tol = 24) => a.every((v, i) => Math.abs(v - b[i]!) <= tol);

beforeAll(async () => {
  synth = await synthesizeDataset({
    outDir: tmp.dir,
    seed: 11,
    numVideos: 10,
    numImages: 3,
    sizes: [
      [32, 32],
      [32, 48],
      [48, 32],
      [36, 64],
    ],
    lengths: [16, 24],
    fps: [8, 12, 24],
    cutFraction: 0.3,
    minSceneFrames: 6,
  });
});
afterAll(() => tmp.cleanup());

describe('synthetic dataset', () => {
  it('writes real mp4/png files and a CSV with exact structured captions', async () => {
    expect(synth.rows.length).toBe(13);
    const rows = await readDatasetCsv(synth.csvPath);
    expect(rows.map((r) => r.text)).toEqual(synth.items.map((i) => i.caption));
    for (const it of synth.items) {
      expect(existsSync(path.join(tmp.dir, it.path))).toBe(true);
      const parsed = parseSynthCaption(it.caption)!;
      expect(parsed.length).toBe(it.scenes.length);
      parsed.forEach((p, k) => expect(p).toEqual({ shape: it.scenes[k]!.shape, color: it.scenes[k]!.color, direction: it.scenes[k]!.direction, background: it.scenes[k]!.background }));
      expect(it.scenes[0]!.color).not.toBe(it.scenes[0]!.background);
    }
    expect(synth.items.filter((i) => i.cuts.length > 0).length).toBe(3);
    expect(synth.items.find((i) => i.kind === 'video')!.caption).toMatch(/^an? \w+ \w+ moving (left|right|up|down) on an? \w+ background/);
    expect(readFileSync(path.join(tmp.dir, synth.items[0]!.path)).subarray(4, 8).toString()).toBe('ftyp');
  });

  it('is deterministic for a seed', async () => {
    const other = tempDir();
    try {
      const again = await synthesizeDataset({ outDir: other.dir, seed: 11, numVideos: 10, numImages: 3, sizes: [[32, 32], [32, 48], [48, 32], [36, 64]], lengths: [16, 24], fps: [8, 12, 24], cutFraction: 0.3, minSceneFrames: 6 });
      expect(again.rows).toEqual(synth.rows);
      expect(readFileSync(path.join(other.dir, again.items[0]!.path))).toEqual(readFileSync(path.join(tmp.dir, synth.items[0]!.path)));
    } finally {
      other.cleanup();
    }
  });
});

describe('info', () => {
  it('probes every row (frames, size, fps, aspect ratio, resolution) and names the output like the reference', async () => {
    const res = await runDatautil([synth.csvPath], { info: true, fmin: 1 });
    expect(res.errors).toEqual([]);
    expect(res.outputs).toEqual([path.join(tmp.dir, 'synth_info_fmin1.csv')]);
    infoCsv = res.outputs[0]!;
    infoRows = await readDatasetCsv(infoCsv);
    expect(infoRows.length).toBe(13);
    infoRows.forEach((r, i) => {
      const it = synth.items[i]!;
      expect([r.num_frames, r.height, r.width, r.resolution]).toEqual([it.numFrames, it.height, it.width, it.height * it.width]);
      expect(r.aspect_ratio).toBeCloseTo(it.height / it.width, 12);
      if (it.kind === 'video') expect(r.fps).toBe(it.fps);
      else expect(r.fps).toBeUndefined();
    });
  });
});

describe('scene detection and cutting', () => {
  let detected: DatasetRow[];
  it('finds exactly the hard cuts (adaptive HSV detector, threshold 3.0, min content 15)', async () => {
    const res = await detectScenesInRows(infoRows, { root: tmp.dir, minSceneLen: 4 });
    expect(res.errors).toEqual([]);
    detected = res.rows;
    for (const [i, r] of detected.entries()) {
      const it = synth.items[i]!;
      if (it.kind === 'image') {
        expect(r.timestamp).toBeUndefined();
        continue;
      }
      const ts = parseTimestampColumn(r.timestamp!);
      const starts = ts.map(([a]) => Math.round(parseTimecode(a) * it.fps));
      expect(starts).toEqual([0, ...it.cuts]);
      expect(Math.round(parseTimecode(ts[ts.length - 1]![1]) * it.fps)).toBe(it.numFrames);
      expect(r.timestamp).toMatch(/^\[\('\d\d:\d\d:\d\d\.\d{3}', '\d\d:\d\d:\d\d\.\d{3}'\)(, \(.*\))*\]$/);
    }
  });

  it('cuts frame-exact clips named {stem}_scene-{idx}.mp4', async () => {
    const saveDir = path.join(tmp.dir, 'clips');
    const res = await cutScenes(detected, { root: tmp.dir, saveDir, relativeTo: tmp.dir });
    expect(res.errors).toEqual([]);
    const videos = synth.items.filter((i) => i.kind === 'video');
    expect(res.rows.length).toBe(videos.reduce((a, v) => a + v.scenes.length, 0));
    for (const clip of res.clips) {
      const it = synth.items.find((x) => x.path === clip.source)!;
      const scene = it.scenes[clip.scene]!;
      expect(path.basename(clip.file)).toBe(`${path.basename(it.path, '.mp4')}_scene-${clip.scene}.mp4`);
      expect([clip.startFrame, clip.endFrame]).toEqual([scene.start, scene.end]);
      const row = res.rows.find((r) => r.path === path.relative(tmp.dir, clip.file))!;
      expect(row.num_frames).toBe(scene.end - scene.start);
      expect(row.fps).toBe(it.fps);
      // first and last frame of every clip belong to its own scene (no frames leak from neighbours)
      const frames = await readVideoFrames(clip.file, [0, row.num_frames! - 1], { fps: row.fps });
      for (const f of frames) expect(near(dominant(f), SYNTH_COLORS[scene.background])).toBe(true);
    }
    await writeDatasetCsv(path.join(tmp.dir, 'clips.csv'), res.rows);
  });
});

describe('scoring, filtering, stats', () => {
  let flowCsv: string;
  it('scores motion and sharpness with bounded concurrency and resumes', async () => {
    flowCsv = path.join(tmp.dir, 'synth_info_fmin1_flow.csv');
    const res = await runScorer(infoCsv, flowScorer({ size: [32, 56] }), { output: flowCsv, concurrency: 2 });
    expect(res.errors).toEqual([]);
    expect(res.scored).toBe(13);
    const rows = await readDatasetCsv(flowCsv);
    rows.forEach((r, i) => {
      if (synth.items[i]!.kind === 'image') expect(r.flow).toBe(0);
      else expect(r.flow!).toBeGreaterThan(0.2);
    });
    // a re-run skips everything; a partially scored output is completed
    const again = await runScorer(infoCsv, flowScorer({ size: [32, 56] }), { output: flowCsv });
    expect([again.scored, again.skipped]).toEqual([0, 13]);
    const partial = rows.map((r, i) => (i % 2 ? { ...r, flow: undefined } : r));
    await writeDatasetCsv(flowCsv, partial);
    let calls = 0;
    const counting = flowScorer({ size: [32, 56] });
    const wrapped = { ...counting, score: (x: Parameters<typeof counting.score>[0]) => (calls++, counting.score(x)) };
    const resumed = await runScorer(infoCsv, wrapped, { output: flowCsv });
    expect(calls).toBe(6);
    expect(resumed.skipped).toBe(7);
    expect((await readDatasetCsv(flowCsv)).map((r) => r.flow)).toEqual(rows.map((r) => r.flow));
    const sharp = await runScorer(flowCsv, sharpnessScorer(), { output: flowCsv });
    expect(sharp.errors).toEqual([]);
    for (const r of sharp.rows) expect(r.sharpness!).toBeGreaterThanOrEqual(0);
  });

  it('filters (fmin, flowmin, empty captions, English) and writes the suffixed output', async () => {
    const res = await runDatautil([flowCsv], { fmin: 2, flowmin: 0.2, removeEmptyCaption: true, lang: 'en' });
    expect(res.outputs).toEqual([path.join(tmp.dir, 'synth_info_fmin1_flow_noempty_en_fmin2_flowmin0.2.csv')]);
    expect(res.rows.length).toBe(10);
    expect(res.rows.every((r) => r.num_frames! >= 2 && r.flow! >= 0.2)).toBe(true);
    expect(res.steps.map((s) => s.step)).toEqual(['lang en', 'remove-empty-caption', 'remove-empty-caption (2nd pass)', 'fmin/fmax', 'flowmin']);
  });

  it('prints a stats table and draws a PNG', async () => {
    const rows = await readDatasetCsv(flowCsv);
    const s = computeStats(rows);
    expect([s.rows, s.videos, s.images]).toEqual([13, 10, 3]);
    const secs = synth.items.filter((i) => i.kind === 'video').reduce((a, i) => a + i.numFrames / i.fps, 0);
    expect(s.videoSeconds).toBeCloseTo(secs, 9);
    expect(s.histograms.duration.bins.reduce((a, b) => a + b.count, 0)).toBe(10);
    expect(s.histograms.aspectRatio.bins.reduce((a, b) => a + b.count, 0)).toBe(13);
    expect(s.histograms.tokens.bins.reduce((a, b) => a + b.count, 0)).toBe(13);
    const table = formatStatsTable(s);
    expect(table).toContain('rows 13   videos 10   images 3');
    expect(table).toContain('caption tokens');
    const png = path.join(tmp.dir, 'stats.png');
    await writeStatsPng(png, s);
    const sharp = (await import('sharp')).default;
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 1000, 700]);
  });
});

describe('reading bucketed samples', () => {
  beforeAll(() => {
    unregisterResolution('tiny32');
    registerResolution('tiny32', { pixels: 32 * 32, aspectRatios: [9 / 16, 1, 1.5] });
  });
  afterAll(() => unregisterResolution('tiny32'));

  it('reads every batch of the bucket sampler in worker threads: shapes, values, text, ar, fps', async () => {
    const bucketConfig = { tiny32: { 1: [1, 3], 8: [1, 2] } } as const;
    const sampler = new VariableVideoBatchSampler(infoRows as Array<{ num_frames: number; height: number; width: number }>, bucketConfig, { seed: 3, frameInterval: 1, shuffle: true });
    const reader = new DatasetReader(infoCsv, { workers: 2, frameInterval: 1, seed: 5 });
    try {
      const loader = new BatchLoader(reader, sampler, { prefetch: 2 });
      let batches = 0;
      const seen = new Set<number>();
      for await (const b of loader) {
        batches++;
        const [T, H, W] = b.thw;
        expect(b.shape).toEqual([b.indices.length, 3, T, H, W]);
        expect(b.video.length).toBe(b.indices.length * 3 * T * H * W);
        let lo = Infinity;
        let hi = -Infinity;
        for (const v of b.video) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
        expect(lo).toBeGreaterThanOrEqual(-1);
        expect(hi).toBeLessThanOrEqual(1);
        b.indices.forEach((idx, k) => {
          seen.add(idx);
          const it = synth.items[idx]!;
          expect(b.text[k]).toBe(it.caption);
          expect(b.ar[k]).toBeCloseTo(W / H, 12);
          expect(b.fps[k]).toBe(it.kind === 'image' ? 120 : it.fps);
          expect([b.numFrames[k], b.height[k], b.width[k]]).toEqual([T, H, W]);
          if (it.kind === 'image') expect(T).toBe(1);
        });
        expect(b.replaced).toEqual([]);
      }
      expect(batches).toBe(sampler.length);
      expect(seen.size).toBeGreaterThan(5);
      expect(reader.failures).toEqual([]);
    } finally {
      await reader.close();
    }
  });

  it('decodes the right frames: a sample of a cut video follows its scenes frame by frame', async () => {
    const reader = new DatasetReader(infoRows, { root: tmp.dir, workers: 0, frameInterval: 2 });
    const idx = synth.items.findIndex((i) => i.cuts.length > 0 && i.numFrames >= 17);
    const it = synth.items[idx]!;
    const s = await reader.read(idx, [8, it.height, it.width]);
    expect(s.frameIndices.length).toBe(8);
    const plane = it.height * it.width;
    s.frameIndices.forEach((fi, t) => {
      const scene = it.scenes.find((sc) => fi >= sc.start && fi < sc.end)!;
      const f: Frame = { data: new Uint8Array(plane * 3), width: it.width, height: it.height };
      for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) f.data[p * 3 + c] = Math.round((s.video[(c * 8 + t) * plane + p]! + 1) * 127.5);
      expect(near(dominant(f), SYNTH_COLORS[scene.background])).toBe(true);
    });
    await reader.close();
  });

  it('replaces a file that fails by another sample of the same bucket, logs and counts it', async () => {
    const good = infoRows.findIndex((r) => r.num_frames === 16 && r.height === 32 && r.width === 32);
    expect(good).toBeGreaterThanOrEqual(0);
    const rows = [...infoRows, { ...infoRows[good]!, path: 'media/missing_clip.mp4' }];
    const bad = rows.length - 1;
    const lines: string[] = [];
    const logger = createLogger({ name: 't', level: 'warn', sink: (_l, line) => lines.push(line), timestamps: false });
    const reader = new DatasetReader(rows, { root: tmp.dir, workers: 1, logger });
    try {
      const specs = [
        { indices: [bad, good], bucketId: ['tiny32', 8, '1.00'] as const, thw: [8, 32, 32] as [number, number, number] },
        { indices: [bad], bucketId: ['tiny32', 8, '1.00'] as const, thw: [8, 32, 32] as [number, number, number] },
      ];
      const loader = new BatchLoader(reader, specs);
      const out = [];
      for await (const b of loader) out.push(b);
      expect(out[0]!.indices[1]).toBe(good);
      expect(out[0]!.indices[0]).not.toBe(bad);
      expect(out[0]!.replaced).toEqual([{ slot: 0, index: bad, by: out[0]!.indices[0], error: expect.stringContaining('file not found') }]);
      expect(out[1]!.indices).toEqual([good]); // the only other sample of this bucket
      expect(loader.stats.replaced).toBe(2);
      expect(reader.failures.length).toBe(2);
      expect(reader.failures[0]!.path).toBe(path.join(tmp.dir, 'media/missing_clip.mp4'));
      expect(lines.some((l) => l.includes('missing_clip.mp4') && l.includes('file not found'))).toBe(true);
    } finally {
      await reader.close();
    }
  });
});
